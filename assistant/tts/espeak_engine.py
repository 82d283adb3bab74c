"""espeak-ng, the last-resort voice: it speaks ~100 languages no bundled Piper voice does.

It is robotic, but it is always there where Piper is (Piper phonemises with it), costs no
model download, and synthesises a sentence in milliseconds. The ``espeak-ng`` program is
driven rather than its C library: no binding to build, and a crash cannot take the app
down. Text goes in on stdin (never a shell, never an argument that could be read as an
option); audio comes back on stdout as a WAV stream, read and yielded as it arrives, so a
long paragraph starts playing after one pipe read rather than after the whole synthesis.
Audio is left at espeak's own rate (22050 Hz); the playback stage resamples.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from assistant.config import TtsConfig
from assistant.errors import ConfigError, ModelError

PROGRAM = "espeak-ng"
INSTALL_HINT = (
    "Fix: install espeak-ng (Debian/Ubuntu: sudo apt install espeak-ng; Fedora: sudo dnf "
    "install espeak-ng; macOS: brew install espeak-ng) and make sure it is on PATH"
)
_DEFAULT_WPM = 175  # espeak's own rate, close to Piper joe's at speed 1.0
_MIN_WPM, _MAX_WPM = 80, 450  # espeak-ng refuses slower; faster is a blur
_CHUNK_BYTES = 8820  # 0.2 s of 16-bit audio at 22050 Hz per yielded piece
# Whisper codes whose espeak-ng voice has another name, or where espeak's first match is
# not the one wanted (its "en" is British; the bundled Piper voice is American).
_ALIASES = {"zh": "cmn", "no": "nb", "en": "en-us"}
_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")


@dataclass(frozen=True)
class EspeakVoice:
    name: str  # what ``-v`` takes, e.g. "cmn", "fr-fr"
    description: str  # e.g. "Chinese (Mandarin)", "French (France)"


def find_program() -> str:
    path = shutil.which(PROGRAM)
    if path is None:
        raise ModelError(f"{PROGRAM} is not installed (the last-resort voice). {INSTALL_HINT}")
    return path


def espeak_voice(language: str, program: str | None = None) -> EspeakVoice:
    """The espeak-ng voice for a Whisper language code, as espeak itself ranks them
    (``espeak-ng --voices=<lang>``, best first). MBROLA voices are skipped: they are listed
    whether or not their separate data is installed, and they speak at 16 kHz."""
    program = program or find_program()
    code = _ALIASES.get(language.lower(), language.lower())
    if not _CODE.match(code):
        raise ConfigError(f"{language!r} is not a language code espeak-ng could have a voice for")
    try:
        listing = subprocess.run(
            [program, f"--voices={code}"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ModelError(f"cannot run {program}: {exc}. {INSTALL_HINT}") from None
    for line in listing.splitlines()[1:]:  # "Pty Language Age/Gender VoiceName File Other"
        fields = line.split()
        if len(fields) >= 5 and not fields[4].startswith("mb/"):
            name = re.sub(r",\s*latin as \w+", "", fields[3].replace("_", " "))
            return EspeakVoice(fields[1], name)
    raise ConfigError(
        f"espeak-ng has no voice for language {language!r}, so translations into it cannot "
        "be spoken. Fix: choose another target language, or set interpret.speak = false "
        "for captions only"
    )


class EspeakEngine:
    """A ``TtsEngine`` over the espeak-ng program: one process per phrase (~15 ms)."""

    def __init__(self, language: str, config: TtsConfig | None = None) -> None:
        self.program = find_program()
        self.voice = espeak_voice(language, self.program)
        self.language = language
        speed = 1.0 if config is None else config.speed
        self._wpm = int(np.clip(round(_DEFAULT_WPM * speed), _MIN_WPM, _MAX_WPM))
        self.sample_rate = self._probe_rate()

    def _command(self) -> list[str]:
        # -b 1: the text is UTF-8; no text argument: it is read from stdin
        return [self.program, "--stdout", "-b", "1", "-v", self.voice.name, "-s", str(self._wpm)]

    def _probe_rate(self) -> int:
        """The rate in espeak's WAV header for this voice (22050 for its own voices)."""
        try:
            out = subprocess.run(
                self._command(), input=b".", capture_output=True, timeout=10, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise ModelError(
                f"{PROGRAM} cannot speak with voice {self.voice.name}: {exc}"
            ) from None
        return _parse_header(out)[0]

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        text = _clean(text)
        if not text:
            return
        proc = subprocess.Popen(
            self._command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        writer = threading.Thread(target=_feed, args=(proc, text.encode()), daemon=True)
        writer.start()
        try:
            yield from self._read(proc)
            stderr = proc.stderr.read().decode(errors="replace").strip()
            if proc.wait(10) != 0:
                last = stderr.splitlines()[-1] if stderr else f"exit status {proc.returncode}"
                raise ModelError(f"{PROGRAM} failed to speak ({self.voice.name}): {last}")
        finally:  # also when the listener interrupts and drops this generator
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            writer.join(1)
            for pipe in (proc.stdout, proc.stderr):
                pipe.close()

    def _read(self, proc: subprocess.Popen) -> Iterator[np.ndarray]:
        buffer = b""
        started = False
        while chunk := proc.stdout.read(_CHUNK_BYTES):
            buffer += chunk
            if not started:
                try:
                    _, offset = _parse_header(buffer)
                except ModelError:
                    if len(buffer) < 256:
                        continue  # the header is not all here yet
                    raise
                buffer, started = buffer[offset:], True
            usable = len(buffer) - len(buffer) % 2
            if usable:
                samples = np.frombuffer(buffer[:usable], dtype="<i2")
                buffer = buffer[usable:]
                yield (samples / 32768.0).astype(np.float32)


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    """Writes the text in its own thread: a long text must not wait on audio being read."""
    try:
        proc.stdin.write(data)
    except (BrokenPipeError, OSError):  # killed while being fed: nothing left to say
        pass
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def _clean(text: str) -> str:
    """Text espeak reads as plain words. ``[[...]]`` would be taken as phoneme codes and a
    NUL ends its input early."""
    text = text.replace("\x00", " ").replace("[[", "[ [").replace("]]", "] ]")
    return text.strip()


def _parse_header(data: bytes) -> tuple[int, int]:
    """(sample rate, offset of the first sample) of espeak's 16-bit mono WAV stream."""
    data_at = data.find(b"data", 12)
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE" or data_at < 0 or len(data) < data_at + 8:
        raise ModelError(f"{PROGRAM} did not produce a WAV stream ({data[:16]!r})")
    channels = int.from_bytes(data[22:24], "little")
    rate = int.from_bytes(data[24:28], "little")
    bits = int.from_bytes(data[34:36], "little")
    if channels != 1 or bits != 16:
        raise ModelError(f"{PROGRAM} produced {channels}-channel {bits}-bit audio; expected mono")
    return rate, data_at + 8
