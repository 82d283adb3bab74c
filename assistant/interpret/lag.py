"""How far the captions and the voice trail the speaker, segment by segment.

Every lag is measured from the capture time of the segment's last voiced window (the
moment the speaker stopped), to when its final caption, its translation and the first
sample of its spoken translation came out.
"""

from __future__ import annotations

import threading

STAGES = ("caption", "translation", "speech")


class SegmentLag:
    def __init__(self, keep: int = 500) -> None:
        self._lock = threading.Lock()
        self._ended: dict[int, float] = {}
        self._lags: dict[int, dict[str, float]] = {}
        self._keep = keep  # a long session forgets its oldest segments

    def ended(self, index: int, at: float) -> None:
        with self._lock:
            self._ended[index] = at
            self._lags.setdefault(index, {})
            while len(self._ended) > self._keep:
                oldest = min(self._ended)
                del self._ended[oldest]
                self._lags.pop(oldest, None)

    def mark(self, index: int, stage: str, at: float) -> dict[str, float]:
        """Record ``stage`` reached at ``at``; returns the segment's lags so far (ms)."""
        with self._lock:
            ended = self._ended.get(index)
            if ended is None:
                return {}
            lags = self._lags[index]
            lags.setdefault(stage, round(1000 * (at - ended), 1))
            return dict(lags)

    def lags_ms(self) -> dict[int, dict[str, float]]:
        with self._lock:
            return {i: dict(v) for i, v in self._lags.items()}
