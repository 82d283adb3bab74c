"""Text-to-speech engines behind one interface (``TtsEngine``)."""

from assistant.tts.base import TtsEngine, create_engine

__all__ = ["TtsEngine", "create_engine"]
