"""Turn numbers: the one mechanism that drops stale work everywhere at once.

Every queued item carries the turn it was made for. Starting a new turn (the user
speaks again, or presses Stop) makes every older item stale; each worker checks before
doing work, and generation checks between tokens.
"""

from __future__ import annotations

import threading


class TurnClock:
    def __init__(self) -> None:
        self._current = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> int:
        return self._current

    def begin(self) -> int:
        with self._lock:
            self._current += 1
            return self._current

    def is_current(self, turn: int) -> bool:
        return turn == self._current
