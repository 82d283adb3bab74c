"""Stable live captions: words two successive decodes agree on are confirmed for good.

Whisper decodes the open segment again every half second or so, and each decode may
change its last words as more audio arrives ("I'd like to book" -> "I'd like a book" ->
"I'd like to book a room"). Showing each decode as it is makes the caption flicker.
Local agreement (Macháček et al., "Turning Whisper into Real-Time Transcription System",
2023) confirms the longest prefix on which the latest two decodes agree; confirmed words
are never rewritten, only followed by the newest decode's tentative rest. A decode that
disagrees with already confirmed words does not move them back: the caption keeps them,
and the segment's final text is the confirmed words plus whatever the last decode has
past them.

Words are compared without case and punctuation ("book," and "Book" agree); CJK text is
compared character by character (``languages.units``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from assistant.interpret.languages import join_units, units


def _key(unit: str) -> str:
    kept = "".join(c for c in unit if not unicodedata.category(c).startswith("P"))
    return kept.casefold()


@dataclass(frozen=True)
class Caption:
    confirmed: str
    tentative: str


class LocalAgreement:
    """The caption of one segment as its decodes arrive."""

    def __init__(self) -> None:
        self._confirmed: list[str] = []
        self._previous: list[str] | None = None
        self._latest: list[str] = []

    @property
    def confirmed(self) -> str:
        return join_units(self._confirmed)

    def update(self, text: str) -> Caption:
        """Take the newest decode of the whole segment so far."""
        hypothesis = units(text)
        n = len(self._confirmed)
        if self._previous is not None:
            agreed = n
            for old, new in zip(self._previous[n:], hypothesis[n:], strict=False):
                if _key(old) != _key(new) or not _key(new):
                    break
                agreed += 1
            self._confirmed += hypothesis[n:agreed]
        self._previous = hypothesis
        self._latest = hypothesis
        return self.caption()

    def caption(self) -> Caption:
        return Caption(self.confirmed, join_units(self._latest[len(self._confirmed) :]))

    def final(self, text: str) -> str:
        """The segment's whole text from its last decode: the confirmed words, then the
        decode's words past them."""
        hypothesis = units(text) if text else self._latest
        return join_units(self._confirmed + hypothesis[len(self._confirmed) :])
