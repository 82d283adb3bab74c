"""Follows the pipeline's events and collects each turn's outcome, for headless callers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from assistant.events import (
    AudioFinished,
    ErrorOccurred,
    Event,
    FinalTranscript,
    NothingHeard,
    ReplyFinished,
    TurnTimings,
)


@dataclass
class TurnRecord:
    turn: int
    transcript: str = ""
    language: str = ""
    reply: str = ""
    timings_ms: dict[str, float | None] = field(default_factory=dict)
    outcome: str = ""  # "answered", "nothing-heard", "interrupted", "error"
    error: str = ""


class TurnLog:
    """An event handler that records turns and lets a caller wait for one to finish."""

    def __init__(self) -> None:
        self.turns: dict[int, TurnRecord] = {}
        self.errors: list[ErrorOccurred] = []
        self._changed = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._changed:
            if isinstance(event, ErrorOccurred):
                self.errors.append(event)
            if event.turn == 0:
                self._changed.notify_all()
                return
            record = self.turns.setdefault(event.turn, TurnRecord(event.turn))
            if isinstance(event, FinalTranscript):
                record.transcript, record.language = event.text, event.language
            elif isinstance(event, ReplyFinished):
                record.reply = event.text
            elif isinstance(event, TurnTimings):
                record.timings_ms = dict(event.timings_ms)
            elif isinstance(event, NothingHeard):
                record.outcome = "nothing-heard"
            elif isinstance(event, AudioFinished):
                record.outcome = "interrupted" if event.interrupted else "answered"
            elif isinstance(event, ErrorOccurred):
                record.outcome, record.error = "error", event.message
            self._changed.notify_all()

    def wait(self, predicate, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def last_finished(self) -> TurnRecord | None:
        done = [r for r in self.turns.values() if r.outcome]
        return max(done, key=lambda r: r.turn) if done else None

    def speech_count(self) -> int:
        return len(self.turns)
