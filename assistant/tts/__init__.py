"""Text-to-speech engines behind one interface (``TtsEngine``)."""

from assistant.tts.base import TtsEngine, create_engine
from assistant.tts.voices import Voice, voice_for_language

__all__ = ["TtsEngine", "Voice", "create_engine", "voice_for_language"]
