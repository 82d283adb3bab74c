"""Follows the pipeline's events and collects each turn's outcome, for headless callers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from assistant.audio.sinks import AudioSink
from assistant.audio.sources import FileSource
from assistant.config import AssistantConfig
from assistant.errors import UserFacingError
from assistant.events import (
    AudioFinished,
    ErrorOccurred,
    Event,
    FinalTranscript,
    NothingHeard,
    ReplyFinished,
    StateChanged,
    TurnCancelled,
    TurnTimings,
)
from assistant.pipeline import Assistant, Engines


@dataclass
class TurnRecord:
    turn: int
    transcript: str = ""
    language: str = ""
    reply: str = ""
    timings_ms: dict[str, float | None] = field(default_factory=dict)
    outcome: str = ""  # "answered", "nothing-heard", "interrupted", "cancelled", "error"
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
            if event.turn == 0 or isinstance(event, StateChanged):
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
            elif isinstance(event, TurnCancelled) and not record.outcome:
                record.outcome = "cancelled"
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


def answer_file(
    config: AssistantConfig, engines: Engines, source: FileSource, sink: AudioSink
) -> TurnRecord | None:
    """Run the live pipeline over one input file; the last turn's record, None if unheard."""
    log = TurnLog()
    assistant = Assistant(config, engines, source, sink)
    assistant.subscribe(log)
    assistant.start()
    try:
        return wait_for_answer(assistant, source, log, config.vad.end_silence_ms / 1000)
    finally:
        assistant.shutdown()


def wait_for_answer(assistant: Assistant, source: FileSource, log: TurnLog, end_silence_s: float):
    """The last turn's record once the file is over and nothing is left in flight."""
    deadline = time.monotonic() + source.audio.size / source.sample_rate + 180
    finished_at: float | None = None
    while time.monotonic() < deadline:
        if source.finished.is_set() and finished_at is None:
            finished_at = time.monotonic()
        if finished_at is not None and not assistant.busy:
            record = log.last_finished()
            latest = max(log.turns, default=0)
            if record is not None and record.turn == latest:
                return record
            if not log.turns and time.monotonic() - finished_at > end_silence_s + 1.0:
                return None
        log.wait(lambda _: False, timeout=0.1)
    raise UserFacingError("the assistant did not answer within its time limit")
