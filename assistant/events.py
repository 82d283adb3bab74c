"""Typed events the pipeline publishes; the window and the CLI only ever see these.

Every event carries the turn it belongs to, so a consumer can ignore events of a turn
that was interrupted. Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    STOPPED = "stopped"
    LOADING = "loading"
    LISTENING = "listening"
    HEARING = "hearing"  # the user is speaking
    THINKING = "thinking"  # transcribing or generating before the first audio
    SPEAKING = "speaking"


@dataclass(frozen=True)
class Event:
    turn: int


@dataclass(frozen=True)
class StateChanged(Event):
    state: State


@dataclass(frozen=True)
class Ready(Event):
    """Models are loaded and audio is flowing: the assistant is listening."""


@dataclass(frozen=True)
class SpeechStarted(Event):
    at: float


@dataclass(frozen=True)
class SpeechEnded(Event):
    at: float  # when the last voiced audio was captured
    duration_s: float


@dataclass(frozen=True)
class PartialTranscript(Event):
    text: str


@dataclass(frozen=True)
class FinalTranscript(Event):
    text: str
    language: str


@dataclass(frozen=True)
class NothingHeard(Event):
    """The utterance held no words (noise, a cough, silence): no reply follows."""

    reason: str


@dataclass(frozen=True)
class ReplyToken(Event):
    text: str


@dataclass(frozen=True)
class ReplyFinished(Event):
    text: str
    cancelled: bool


@dataclass(frozen=True)
class AudioStarted(Event):
    at: float


@dataclass(frozen=True)
class PhrasePlaying(Event):
    """A phrase of the reply reaches the speaker at ``at`` (what its echo can be)."""

    text: str
    at: float


@dataclass(frozen=True)
class AudioFinished(Event):
    interrupted: bool


@dataclass(frozen=True)
class TurnCancelled(Event):
    reason: str  # "barge-in" or "stop"


@dataclass(frozen=True)
class TurnTimings(Event):
    """Per-stage latency of one turn, in milliseconds (None where a stage did not run)."""

    timings_ms: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceRestored(Event):
    """An audio device that had failed works again (``stage`` as in ``ErrorOccurred``)."""

    stage: str


@dataclass(frozen=True)
class ErrorOccurred(Event):
    stage: str
    message: str
    fatal: bool = False


@dataclass(frozen=True)
class SourceCaption(Event):
    """The interpreter's caption of what is being said, in the speaker's language.

    ``confirmed`` only ever grows within a segment (two decodes agreed on it); the
    ``tentative`` rest may change with the next decode. ``final``: the segment has closed
    and ``confirmed`` is its whole text. Times are seconds of audio since the session
    started."""

    segment: int
    confirmed: str
    tentative: str
    language: str
    start: float
    end: float
    final: bool = False


@dataclass(frozen=True)
class TranslatedCaption(Event):
    """A closed segment, translated."""

    segment: int
    source: str
    text: str
    source_language: str
    target_language: str
    start: float
    end: float


@dataclass(frozen=True)
class SegmentTimings(Event):
    """How long after the speaker stopped each of the segment's outputs came, in ms:
    "caption" (the final caption), "translation", "speech" (its first sample played)."""

    segment: int
    timings_ms: dict[str, float] = field(default_factory=dict)


EventHandler = Callable[[Event], None]
