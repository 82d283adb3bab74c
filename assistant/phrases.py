"""Cuts a streamed reply into phrases TTS can speak while the rest is still generating.

A phrase ends at a sentence end; a clause break (comma, semicolon, colon, dash) ends one
once it is long enough to sound natural on its own; a run-on is cut at the last space.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s|\n+")
_CLAUSE_END = re.compile(r"[,;:]\s|\s[-–—]\s")
_MARKUP = re.compile(r"[*_#`~>|]+|\[(.*?)\]\(.*?\)")
_NON_SPEECH = re.compile(r"[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")


def speakable(text: str) -> str:
    """Text as it should be read aloud: no markdown marks, emoji or stray whitespace."""
    text = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    text = _NON_SPEECH.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


class PhraseSplitter:
    def __init__(self, min_chars: int = 24, max_chars: int = 160) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        phrases = []
        while phrase := self._next():
            if spoken := speakable(phrase):
                phrases.append(spoken)
        return phrases

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer, ""
        spoken = speakable(rest)
        return [spoken] if spoken else []

    def _next(self) -> str | None:
        buf = self._buffer
        cut = None
        if match := _SENTENCE_END.search(buf):
            cut = match.end()
        else:
            for match in _CLAUSE_END.finditer(buf):
                if match.end() >= self.min_chars:
                    cut = match.end()
                    break
        if cut is None and len(buf) > self.max_chars:
            space = buf.rfind(" ", 0, self.max_chars)
            cut = space + 1 if space > 0 else self.max_chars
        if cut is None:
            return None
        self._buffer = buf[cut:]
        return buf[:cut]
