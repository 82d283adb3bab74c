"""Offline voice assistant engine: audio, VAD, ASR, LLM, TTS and the pipeline joining them.

This package never imports Qt; the desktop window lives in ``ui``.
"""

__version__ = "0.1.0"
