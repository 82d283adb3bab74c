"""Follows the pipeline's events and collects each turn's outcome, for headless callers."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
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


def answer_question(
    config: AssistantConfig,
    engines: Engines,
    source: FileSource,
    sink: AudioSink,
    on_progress: Callable[[float, float], None] | None = None,
) -> TurnRecord | None:
    """Answer the whole of ``source``'s file as ONE utterance; its record, None if unheard.

    Push-to-talk semantics on the live pipeline: the talk button is held from the file's
    first sample until it has all been delivered, so pauses inside the question do not
    end the turn, and the pipeline answers it once. ``on_progress(heard_s, total_s)`` is
    called a few times a second while the file is fed, and once with all of it heard.
    """
    config = dataclasses.replace(config, vad=dataclasses.replace(config.vad, mode="push-to-talk"))
    log = TurnLog()
    assistant = Assistant(config, engines, source, sink)
    assistant.subscribe(log)
    total_s = source.audio.size / source.sample_rate
    # Presses are stamped when made and applied at the audio captured at that instant:
    # this one precedes the source's start, so it holds from the file's first window.
    assistant.push_to_talk(True)
    assistant.start()
    try:
        started = time.monotonic()
        while not source.finished.wait(0.25):
            heard_s = time.monotonic() - started  # the file is paced at the wall clock
            if heard_s > total_s + 60:
                raise UserFacingError("the assistant stopped taking in the recording")
            if on_progress is not None:
                on_progress(min(heard_s, total_s), total_s)
        # Released as soon as the last block is out: applied after the file's last window.
        assistant.push_to_talk(False)
        if on_progress is not None:
            on_progress(total_s, total_s)
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
