"""Turns and attempts: the one mechanism that drops stale work everywhere at once.

Every queued item carries a ``Ticket``: the user-visible turn and an attempt within it.
A new turn (the user speaks again, or presses Stop) makes every older ticket stale; so
does a new attempt of the same turn, which is how a reply started speculatively during a
pause is dropped when the user turns out not to have finished. Each worker checks its
ticket before doing work, and generation checks between tokens.
"""

from __future__ import annotations

import threading
from typing import NamedTuple


class Ticket(NamedTuple):
    turn: int
    attempt: int = 0


class TurnClock:
    def __init__(self) -> None:
        self._current = Ticket(0, 0)
        self._lock = threading.Lock()

    @property
    def current(self) -> Ticket:
        return self._current

    @property
    def turn(self) -> int:
        return self._current.turn

    def begin(self) -> Ticket:
        """A new turn: everything in flight becomes stale."""
        with self._lock:
            self._current = Ticket(self._current.turn + 1, 0)
            return self._current

    def retry(self) -> Ticket:
        """A new attempt at the same turn: the previous attempt's work becomes stale."""
        with self._lock:
            self._current = Ticket(self._current.turn, self._current.attempt + 1)
            return self._current

    def is_current(self, ticket: Ticket) -> bool:
        return ticket == self._current
