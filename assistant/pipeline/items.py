"""What the stage workers pass each other through their queues.

Every item carries the ticket of the attempt it belongs to, so a worker can drop work
from a turn that has since been cancelled without being told.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assistant.pipeline.turns import Ticket

STOP = object()  # put on every queue at shutdown


@dataclass(frozen=True)
class Heard:
    ticket: Ticket
    audio: np.ndarray
    final: bool
    # The endpointer already found at least min_speech_ms of speech in it, so the
    # recogniser need not look for speech again (~5 ms of Silero a question).
    voiced: bool = False


@dataclass(frozen=True)
class Probe:
    """Speech heard while the assistant talks: its words, told to ``reply``, decide
    whether it interrupts (``assistant/pipeline/barge_in.py``)."""

    ticket: Ticket
    audio: np.ndarray
    reply: Callable[[str], None]


@dataclass(frozen=True)
class Ask:
    ticket: Ticket
    text: str


@dataclass(frozen=True)
class Phrase:
    ticket: Ticket
    text: str | None  # None marks the end of the reply
    first: bool = False  # the reply's first phrase: its quiet start is trimmed


@dataclass(frozen=True)
class Speech:
    ticket: Ticket
    samples: np.ndarray | None  # None marks the end of the reply
    rate: int
    begins: str = ""  # the phrase whose first samples these are ("" for its later pieces)


# -- the interpreter ---------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentAudio:
    """The open segment's audio so far (``final``: the segment has closed). ``start`` is
    seconds of audio since the session began; ``ended_at`` the capture time of its last
    voiced window (``time.monotonic()``), what caption lag is measured from;
    ``started_at`` that of the window that confirmed speech began."""

    ticket: Ticket
    index: int
    audio: np.ndarray
    start: float
    final: bool
    ended_at: float
    started_at: float
    cut: bool = False  # closed at the length cap, not at a pause


@dataclass(frozen=True)
class ClosedSegment:
    ticket: Ticket
    index: int
    text: str
    language: str
    audio: np.ndarray
    start: float
    end: float
    ended_at: float


@dataclass(frozen=True)
class SpokenText:
    """A segment's translation, to be read aloud."""

    ticket: Ticket
    index: int
    text: str
    language: str
    ended_at: float


@dataclass(frozen=True)
class SpokenAudio:
    ticket: Ticket
    index: int
    samples: np.ndarray | None  # None: the segment's translation is all there
    rate: int
    text: str
    ended_at: float
