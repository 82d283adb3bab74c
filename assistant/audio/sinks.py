"""Where the reply's audio goes: the speakers or a file, behind one interface.

Sinks queue whole chunks and report, per chunk, when its first sample actually
reached the output, which is the end point of voice-to-voice latency.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from assistant.audio.playback_reference import PlaybackReference
from assistant.errors import AudioDeviceError

OnStart = Callable[[float], None]
_DUCK_DB = -30.0  # nearly silent: the reply pauses while the user may be talking


class AudioSink(Protocol):
    sample_rate: int

    def start(self) -> None: ...

    def play(self, samples: np.ndarray, on_start: OnStart | None = None) -> None:
        """Queue mono float32 samples; ``on_start`` gets the time the first one plays."""

    def clear(self) -> None:
        """Drop everything queued; the output falls silent within one device block."""

    def wait_idle(self, timeout: float) -> bool:
        """Block until all queued audio has played; False on timeout."""

    def close(self) -> None: ...


class NullSink:
    """Plays nothing and keeps nothing: for a muted app, or when no speaker can be opened,
    so that replies still arrive as text and every turn still completes."""

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate

    def start(self) -> None:
        pass

    def play(self, samples: np.ndarray, on_start: OnStart | None = None) -> None:
        if on_start is not None:
            on_start(time.monotonic())

    def clear(self) -> None:
        pass

    def wait_idle(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


class FileSink:
    """Collects the reply in memory; the caller writes it out once the turn succeeded
    (``assistant.audio.output_file``), so a failed turn never touches a file."""

    def __init__(self, sample_rate: int = 22050) -> None:
        self.sample_rate = sample_rate
        self._chunks: list[np.ndarray] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        pass

    def play(self, samples: np.ndarray, on_start: OnStart | None = None) -> None:
        with self._lock:
            self._chunks.append(np.asarray(samples, dtype=np.float32))
        if on_start is not None:
            on_start(time.monotonic())

    def clear(self) -> None:
        pass  # a file has no "not yet played" audio

    def wait_idle(self, timeout: float) -> bool:
        return True

    @property
    def audio(self) -> np.ndarray:
        with self._lock:
            return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)

    def close(self) -> None:
        pass


class SpeakerSink:
    """A sounddevice output stream fed from a queue in PortAudio's callback.

    A callback stream (rather than ``sounddevice.play`` or blocking writes) lets ``clear``
    silence the output within one block, keeps the stream open between replies so short
    replies are never truncated, and tells exactly when each chunk's first sample plays.
    """

    def __init__(
        self,
        device: str | int | None = None,
        block_ms: int = 20,
        reference: PlaybackReference | None = None,
    ) -> None:
        self.device = device
        self.reference = reference  # told every block played, for the echo canceller
        self._gain = 1.0  # lowered by duck() while the user may be talking over it
        self._applied_gain = 1.0
        self.sample_rate = 0
        self._block_ms = block_ms
        self._chunks: collections.deque[list] = collections.deque()  # [samples, offset, on_start]
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stream = None
        self._error: str | None = None

    def start(self) -> None:
        import sounddevice as sd

        try:
            info = sd.query_devices(self.device, "output")
            self.sample_rate = int(info["default_samplerate"])
            self._stream = sd.OutputStream(
                device=self.device,
                channels=1,
                samplerate=self.sample_rate,
                dtype="float32",
                blocksize=max(1, self.sample_rate * self._block_ms // 1000),
                latency="low",
                callback=self._fill,
                finished_callback=self._on_finished,
            )
            self._stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioDeviceError(
                f"no usable speaker ({self.device or 'system default'}): {exc}"
            ) from None

    def _fill(self, outdata, frames, time_info, status) -> None:  # PortAudio's thread
        out = outdata[:, 0]
        filled = 0
        started: list[tuple[OnStart, float]] = []
        dac_delay = max(0.0, time_info.outputBufferDacTime - time_info.currentTime)
        now = time.monotonic()
        with self._lock:
            while filled < frames and self._chunks:
                chunk = self._chunks[0]
                samples, offset, on_start = chunk
                if offset == 0 and on_start is not None:
                    started.append((on_start, now + dac_delay + filled / self.sample_rate))
                n = min(frames - filled, samples.size - offset)
                out[filled : filled + n] = samples[offset : offset + n]
                filled += n
                chunk[1] = offset + n
                if chunk[1] >= samples.size:
                    self._chunks.popleft()
            if not self._chunks:
                self._idle.notify_all()
        out[filled:] = 0.0
        if self._gain != 1.0 or self._applied_gain != 1.0:  # ramped: no click
            out *= np.linspace(self._applied_gain, self._gain, frames, dtype=np.float32)
            self._applied_gain = self._gain
        if self.reference is not None:
            ran_dry = bool(status and status.output_underflow)
            self.reference.played(out, self.sample_rate, now + dac_delay, after_gap=ran_dry)
        for callback, at in started:
            callback(at)

    def _on_finished(self) -> None:
        with self._lock:
            if self._stream is not None:
                self._error = "the speaker stopped (unplugged or taken by another app)"
            self._chunks.clear()
            self._idle.notify_all()

    def play(self, samples: np.ndarray, on_start: OnStart | None = None) -> None:
        if self._error or self._stream is None:
            raise AudioDeviceError(self._error or "no speaker is open")
        with self._lock:
            self._chunks.append([np.asarray(samples, dtype=np.float32), 0, on_start])

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._gain = 1.0  # the next reply plays at full level
            self._idle.notify_all()

    def duck(self, down: bool) -> None:
        """Play ``_DUCK_DB`` quieter (or again at full level): while the user may be talking
        over the reply, less of it reaches the microphone, so more of the user does."""
        self._gain = 10 ** (_DUCK_DB / 20) if down else 1.0

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._chunks:
                left = deadline - time.monotonic()
                if left <= 0 or self._error:
                    return not self._chunks
                self._idle.wait(left)
            return True

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()  # lets the device play what it already holds
                stream.close()
            except Exception:  # a vanished device may fail to close; nothing to save
                pass
