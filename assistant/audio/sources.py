"""Where the pipeline's audio comes from: a microphone or a file, behind one interface."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.audio.blocks import AudioBlock
from assistant.audio.files import read_audio
from assistant.audio.resample import StreamResampler, to_mono
from assistant.errors import AudioDeviceError


class AudioSource(Protocol):
    sample_rate: int

    def start(self) -> None: ...

    def read(self, timeout: float) -> AudioBlock | None:
        """The next block, or None if none arrived within ``timeout`` or the source closed."""

    def close(self) -> None: ...


class FileSource:
    """Feeds a file as if it were a microphone, then room silence until closed.

    ``realtime=True`` paces blocks at the wall clock so latency figures mean what they
    would live; ``realtime=False`` feeds the file as fast as it is consumed (long inputs
    in tests) and paces only the trailing silence.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        audio: np.ndarray | None = None,
        sample_rate: int = 16000,
        block_ms: int = 32,
        realtime: bool = True,
    ) -> None:
        if audio is None:
            if path is None:
                raise ValueError("FileSource needs a path or samples")
            audio = read_audio(path, sample_rate)
        self.sample_rate = sample_rate
        self.audio = np.asarray(audio, dtype=np.float32)
        self.realtime = realtime
        self._block = max(1, sample_rate * block_ms // 1000)
        self._pos = 0
        self._t0 = 0.0
        self._closed = threading.Event()
        self.finished = threading.Event()  # set once the whole file has been delivered

    def start(self) -> None:
        """Start, or after ``close`` resume, feeding from where the file had got to."""
        self._closed.clear()
        self._t0 = time.monotonic() - self._pos / self.sample_rate

    def read(self, timeout: float) -> AudioBlock | None:
        if self._closed.is_set():
            return None
        start, end = self._pos, self._pos + self._block
        self._pos = end
        if start < self.audio.size:
            samples = self.audio[start:end]
            if samples.size < self._block:
                samples = np.pad(samples, (0, self._block - samples.size))
            if not self.realtime:
                return AudioBlock(samples, time.monotonic())
        else:
            if not self.finished.is_set() and not self.realtime:
                self._t0 = time.monotonic() - start / self.sample_rate  # pace silence from now
            self.finished.set()
            samples = np.zeros(self._block, dtype=np.float32)
        due = self._t0 + end / self.sample_rate
        wait = due - time.monotonic()
        if wait > 0 and self._closed.wait(wait):
            return None
        return AudioBlock(samples, due)

    def close(self) -> None:
        self._closed.set()


class MicrophoneSource:
    """A sounddevice input stream, down-mixed and resampled to the pipeline rate.

    The device is opened at its own native rate and converted with soxr, so a 44.1/48 kHz
    microphone never depends on the host's (often poor) resampler.
    """

    def __init__(
        self, device: str | int | None = None, sample_rate: int = 16000, block_ms: int = 32
    ) -> None:
        self.sample_rate = sample_rate
        self.device = device
        self._block_ms = block_ms
        self._queue: queue.Queue[tuple[np.ndarray, float]] = queue.Queue()
        self._stream = None
        self._resampler: StreamResampler | None = None
        self._last_audio = 0.0

    def start(self) -> None:
        import sounddevice as sd

        try:
            info = sd.query_devices(self.device, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioDeviceError(
                f"no usable microphone ({_describe(self.device)}): {exc}"
            ) from None
        rate = int(info["default_samplerate"])
        self._resampler = StreamResampler(rate, self.sample_rate)
        try:
            self._stream = sd.InputStream(
                device=self.device,
                channels=1,
                samplerate=rate,
                dtype="float32",
                blocksize=max(1, rate * self._block_ms // 1000),
                latency="low",
                callback=self._on_audio,
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioDeviceError(f"cannot open microphone {info['name']!r}: {exc}") from None
        self._last_audio = time.monotonic()

    def _on_audio(self, indata, frames, time_info, status) -> None:  # PortAudio's thread
        self._queue.put((indata[:, 0].copy(), time.monotonic()))

    def read(self, timeout: float) -> AudioBlock | None:
        try:
            samples, stamp = self._queue.get(timeout=timeout)
        except queue.Empty:
            if self._stream is not None and time.monotonic() - self._last_audio > 2.0:
                raise AudioDeviceError(
                    "the microphone stopped delivering audio (unplugged or taken by another app)"
                ) from None
            return None
        self._last_audio = time.monotonic()
        assert self._resampler is not None
        return AudioBlock(self._resampler(to_mono(samples)), stamp)

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:  # a vanished device may fail to close; nothing to save
                pass
            self._stream = None


def _describe(device: str | int | None) -> str:
    return "system default" if device is None else f"device {device!r}"
