"""Reading any audio file the user hands us, with errors that say what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from assistant.audio.resample import resample, to_mono
from assistant.errors import AudioInputError


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``.

    soundfile covers WAV/FLAC/OGG/MP3 without a subprocess; PyAV (shipped with
    faster-whisper) covers the rest (m4a, opus in webm, video files).
    """
    path = Path(path)
    if not path.exists():
        raise AudioInputError(f"audio file not found: {path}")
    if not path.is_file():
        raise AudioInputError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise AudioInputError(f"audio file is empty: {path}")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
        audio = resample(to_mono(data), rate, sample_rate)
    except (soundfile.LibsndfileError, RuntimeError, ValueError):
        audio = _decode_with_av(path, sample_rate)
    if audio.size == 0:
        raise AudioInputError(f"audio file holds no samples: {path}")
    if not np.isfinite(audio).all():
        raise AudioInputError(f"audio file holds invalid samples (NaN/inf): {path}")
    return audio


def _decode_with_av(path: Path, sample_rate: int) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    try:
        return decode_audio(str(path), sampling_rate=sample_rate).astype(np.float32, copy=False)
    except Exception as exc:  # PyAV raises many unrelated types for a non-audio file
        raise AudioInputError(f"cannot decode {path} as audio ({type(exc).__name__})") from None


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write a 16-bit WAV file atomically (see ``output_file``)."""
    from assistant.audio.output_file import OutputFile

    OutputFile(path).write(audio, sample_rate)
