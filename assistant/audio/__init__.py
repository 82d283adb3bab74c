"""Audio in and out: devices, files, and the conversion between them."""

from assistant.audio.blocks import AudioBlock
from assistant.audio.files import read_audio, write_wav
from assistant.audio.resample import resample, to_mono

__all__ = ["AudioBlock", "read_audio", "resample", "to_mono", "write_wav"]
