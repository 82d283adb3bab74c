"""What an interpreting session said: its segments, kept for the window and for export."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CaptionSegment:
    """One closed segment: seconds of audio since the session started, the words in the
    speaker's language, and their translation ("" until it is ready)."""

    index: int
    start: float
    end: float
    text: str
    language: str
    translation: str = ""
    target: str = ""


class CaptionRecord:
    """The session's segments in order; written by the pipeline, read by anyone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._segments: dict[int, CaptionSegment] = {}

    def add(self, segment: CaptionSegment) -> None:
        with self._lock:
            self._segments[segment.index] = segment

    def translated(self, index: int, translation: str, target: str) -> None:
        with self._lock:
            old = self._segments.get(index)
            if old is not None:
                self._segments[index] = replace(old, translation=translation, target=target)

    def segments(self) -> list[CaptionSegment]:
        with self._lock:
            return [self._segments[i] for i in sorted(self._segments)]

    def clear(self) -> None:
        with self._lock:
            self._segments.clear()
