"""Keeps the interpreter from captioning its own spoken translation.

The echo canceller takes most of the voice out of the microphone, but what it leaves,
or a loud speaker it has not yet learnt, can still be heard as speech. A segment heard
while (or just after) a translation played whose words are mostly that translation's is
the app hearing itself, and is dropped rather than translated back.
"""

from __future__ import annotations

import collections
import threading

from assistant.pipeline.barge_in import words_of

_REMEMBER_S = 30.0  # spoken translations kept for the comparison
_SHARE = 0.6  # of a segment's words found in what was spoken: an echo


class EchoGuard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spoken: collections.deque[tuple[float, set[str]]] = collections.deque()

    def spoken(self, text: str, at: float) -> None:
        """A translation started playing at ``at``."""
        with self._lock:
            self._spoken.append((at, set(words_of(text))))
            while self._spoken and self._spoken[0][0] < at - _REMEMBER_S:
                self._spoken.popleft()

    def is_echo(self, text: str, ended_at: float) -> bool:
        words = words_of(text)
        if not words:
            return False
        with self._lock:
            recent = set().union(
                *(w for at, w in self._spoken if ended_at - _REMEMBER_S <= at <= ended_at)
            )
        if not recent:
            return False
        return sum(w in recent for w in words) / len(words) >= _SHARE
