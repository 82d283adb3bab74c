"""Writing an audio file the user asked for: checked before any work, written atomically.

The format comes from the file name's extension, and the place is tried with a real
temporary file when the output is named, so a wrong name or an unwritable folder is
refused before minutes of work rather than after. The audio is written to a temporary
file beside the target and renamed over it only once complete: a failure, or a turn that
produced nothing, never touches an existing file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from assistant.errors import AudioOutputError

# Extension: (libsndfile format, subtype). MP3 needs libsndfile 1.1 or later.
_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}


def writable_formats() -> dict[str, tuple[str, str]]:
    """The extensions this libsndfile can write."""
    available = soundfile.available_formats()
    return {ext: spec for ext, spec in _FORMATS.items() if spec[0] in available}


def check_place(path: Path) -> None:
    """Create (and remove) a file where ``path`` will go: the only sure test that it can be
    written. A missing folder is never made: a mistyped folder or an unmounted disk must
    not be created. Raises ``AudioOutputError`` (one line)."""
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise AudioOutputError(f"cannot write {path}: {folder} {what}")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise AudioOutputError(f"cannot write {path}: {exc.strerror or exc}") from None


class OutputFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise AudioOutputError(f"cannot write {self.path}: it is a folder")
        formats = writable_formats()
        extension = self.path.suffix.lower()
        if extension not in formats:
            raise AudioOutputError(
                f"cannot write {self.path}: name the file with one of "
                f"{', '.join(formats)} (the extension sets the format)"
            )
        self.format, self.subtype = formats[extension]
        check_place(self.path)

    def write(self, audio: np.ndarray, sample_rate: int) -> None:
        """Write ``audio`` (mono float32) as a whole file, or leave everything as it was."""
        folder = self.path.parent
        handle, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=self.path.suffix, dir=folder
        )
        os.close(handle)
        try:
            samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
            soundfile.write(
                temporary, samples, sample_rate, subtype=self.subtype, format=self.format
            )
            os.replace(temporary, self.path)
        except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
            raise AudioOutputError(f"cannot write {self.path}: {exc}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
