"""Per-turn stage timestamps and the latency figures derived from them."""

from __future__ import annotations

import threading
from collections import defaultdict


class TurnTimer:
    """Collects ``time.monotonic()`` marks per turn from any worker thread."""

    def __init__(self) -> None:
        self._marks: dict[int, dict[str, float]] = defaultdict(dict)
        self._lock = threading.Lock()

    def mark(self, turn: int, name: str, at: float, *, first: bool = True) -> None:
        """Record ``name``; with ``first`` only its first occurrence counts."""
        with self._lock:
            marks = self._marks[turn]
            if not first or name not in marks:
                marks[name] = at

    def has(self, turn: int, name: str) -> bool:
        with self._lock:
            return name in self._marks.get(turn, {})

    def timings_ms(self, turn: int) -> dict[str, float | None]:
        with self._lock:
            m = dict(self._marks.get(turn, {}))

        def span(start: str, end: str) -> float | None:
            if start in m and end in m:
                return round(1000 * (m[end] - m[start]), 1)
            return None

        return {
            "endpoint": span("speech_end", "endpoint"),
            "asr": span("asr_start", "asr_end"),
            "llm_first_token": span("llm_start", "llm_first_token"),
            "llm_first_phrase": span("llm_start", "llm_first_phrase"),
            "tts_first_audio": span("tts_start", "tts_first_audio"),
            "voice_to_voice": span("speech_end", "first_sample"),
        }

    def reset(self, turn: int) -> None:
        """Forget a turn's marks (its speculative attempt was dropped)."""
        with self._lock:
            self._marks.pop(turn, None)

    def forget_before(self, turn: int) -> None:
        with self._lock:
            for old in [t for t in self._marks if t < turn - 8]:
                del self._marks[old]
