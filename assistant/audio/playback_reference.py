"""What the speaker played, when, at 16 kHz: the far end an echo canceller subtracts.

The speaker's stream hands over every block it gives the device, silence included, with
the time its first sample reaches the output, so the far end is on the same clock as
the microphone's blocks and resampled the way the microphone is (soxr, streaming). The
canceller asks for the far end of exactly the interval of each microphone frame; the
acoustic delay between the two is the canceller's to find.
"""

from __future__ import annotations

import bisect
import collections
import threading

import numpy as np

from assistant.audio.resample import StreamResampler

_KEEP_S = 4.0  # more than any room's echo path plus the device buffers


class PlaybackReference:
    def __init__(self, rate: int = 16000) -> None:
        self.rate = rate
        self._incoming: collections.deque[tuple[np.ndarray, int, float, bool]] = collections.deque()
        self._lock = threading.Lock()
        self._resampler: StreamResampler | None = None
        self._device_rate = 0
        self._starts: list[float] = []  # start time of each chunk below, in order
        self._chunks: list[np.ndarray] = []
        self._next_at: float | None = None  # where the resampled stream has got to

    def played(self, samples: np.ndarray, rate: int, at: float, *, after_gap: bool = False) -> None:
        """A block the device plays from ``at`` on (called on the audio thread: it only
        queues a copy). ``after_gap``: the device ran dry before it (an underrun) and
        played silence nobody handed it, so the block plays later than the blocks before
        it make it seem."""
        self._incoming.append((np.array(samples, dtype=np.float32), rate, at, after_gap))

    def far_end(self, start: float, n: int) -> np.ndarray:
        """The ``n`` samples played from ``start`` on; zeros where nothing played."""
        out = np.zeros(n, dtype=np.float32)
        end = start + n / self.rate
        with self._lock:
            self._absorb()
            i = max(0, bisect.bisect_right(self._starts, start) - 1)
            while i < len(self._starts) and self._starts[i] < end:
                chunk, at = self._chunks[i], self._starts[i]
                first = round((at - start) * self.rate)  # where the chunk lands in out
                lo, hi = max(0, first), min(n, first + chunk.size)
                if lo < hi:
                    out[lo:hi] = chunk[lo - first : hi - first]
                i += 1
        return out

    def level_db(self, start: float, end: float) -> float:
        """The loudest sample played between ``start`` and ``end``, in dBFS."""
        samples = self.far_end(start, max(1, round((end - start) * self.rate)))
        peak = float(np.abs(samples).max()) if samples.size else 0.0
        return 20 * np.log10(peak) if peak > 1e-6 else -120.0

    def _absorb(self) -> None:
        while self._incoming:
            samples, rate, at, after_gap = self._incoming.popleft()
            if rate != self._device_rate:
                self._resampler, self._device_rate = StreamResampler(rate, self.rate), rate
                self._next_at = None
            assert self._resampler is not None
            resampled = self._resampler(samples)
            # Contiguous blocks continue the stream where it got to, so the resampler's own
            # hold-back does not shift them; a gap (the stream restarted, or the device
            # says it ran dry) starts afresh.
            if (
                self._next_at is None
                or abs(at - self._next_at) > 0.05
                or (after_gap and at > self._next_at)
            ):
                self._next_at = at
            if resampled.size:
                self._starts.append(self._next_at)
                self._chunks.append(resampled)
                self._next_at += resampled.size / self.rate
        if self._starts:
            cut = bisect.bisect_left(self._starts, self._starts[-1] - _KEEP_S)
            del self._starts[:cut], self._chunks[:cut]
