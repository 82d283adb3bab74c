"""What every translator offers the interpreter.

A translator turns one closed segment into the target language. It is told the segments
before it (source and translation) as context, so a pronoun or a half sentence that runs
on from the previous segment can be translated in its light. Some translators read the
text (an LLM, a machine-translation model); Whisper's translate task listens to the audio
instead, so a segment carries both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Cancelled = Callable[[], bool]


@dataclass(frozen=True)
class SourceSegment:
    text: str
    language: str  # the speaker's language ("" when it is not known)
    audio: np.ndarray | None = None  # 16 kHz mono float32, for translators that listen


@dataclass(frozen=True)
class Context:
    """A segment before this one: what was said and how it was translated."""

    text: str
    translation: str


class Translator(ABC):
    #: Short name for reports and the command line: "whisper", "llm", "mt".
    name: str = ""

    @abstractmethod
    def supports(self, source: str, target: str) -> bool:
        """Whether this translator can translate ``source`` into ``target`` at all
        (``source`` may be "" when it is detected later)."""

    @abstractmethod
    def translate(
        self,
        segment: SourceSegment,
        target: str,
        context: Sequence[Context] = (),
        cancelled: Cancelled = lambda: False,
    ) -> str:
        """The segment in ``target``; "" when there is nothing to translate. Failures
        raise a ``UserFacingError`` (one line)."""

    @abstractmethod
    def describe(self) -> str:
        """One line for ``doctor``, the window and logs: engine, model, device."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release what the translator holds (a model, a connection)."""
