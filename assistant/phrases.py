"""Cuts a streamed reply into phrases TTS can speak while the rest is still generating.

A phrase ends at a sentence end; a clause break (comma, semicolon, colon, dash) ends one
once it is long enough to sound natural on its own; a run-on is cut at the last space.
The reply's first phrase ends sooner (see ``first_words``): until it is spoken the user
hears nothing, and every word in it is one more decoding step and more audio to
synthesise before the first sound.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s|\n+")
_CLAUSE_END = re.compile(r"[,;:]\s|\s[-–—]\s")
_MARKUP = re.compile(r"[*_#`~>|]+|\[(.*?)\]\(.*?\)")
_NON_SPEECH = re.compile(r"[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")
_WORD_SO_FAR = re.compile(r"\S+(?:\s+|$)")  # a word is complete once whitespace follows
# English words a clause or prepositional phrase often starts with: cutting just before
# one splits where a speaker could pause ("There are seven days | in a week").
# fmt: off
_CLAUSE_STARTS = frozenset((
    "about", "after", "although", "and", "as", "at", "because", "before", "but", "by",
    "for", "from", "if", "in", "into", "like", "of", "on", "or", "since", "so", "than",
    "that", "then", "though", "to", "until", "when", "where", "whereas", "which",
    "while", "who", "with", "without",
))
# fmt: on
_MIN_WORDS_BEFORE_CUT = 3


def speakable(text: str) -> str:
    """Text as it should be read aloud: no markdown marks, emoji or stray whitespace."""
    text = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    text = _NON_SPEECH.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def ends_mid_sentence(phrase: str) -> bool:
    """Whether the phrase was cut between words, with no punctuation to pause at."""
    return bool(phrase) and phrase[-1].isalnum()


class PhraseSplitter:
    """``first_words`` (0: off) makes the first phrase end at any clause break, before a
    clause-starting word once three words precede it, or else after that many words."""

    def __init__(self, min_chars: int = 24, max_chars: int = 160, first_words: int = 0) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.first_words = first_words
        self._first = first_words > 0
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
        if cut is None and self._first:
            cut = self._early_cut(buf)
        if cut is None and len(buf) > self.max_chars:
            space = buf.rfind(" ", 0, self.max_chars)
            cut = space + 1 if space > 0 else self.max_chars
        if cut is None:
            return None
        self._first = False
        self._buffer = buf[cut:]
        return buf[:cut]

    def _early_cut(self, buf: str) -> int | None:
        if match := _CLAUSE_END.search(buf):
            return match.end()
        # The word being decoded counts too: once " in" arrives the cut is known, one token
        # sooner than waiting for the space after it (were it "inside", the cut still
        # falls between two words).
        words = list(_WORD_SO_FAR.finditer(buf))
        for i, word in enumerate(words[_MIN_WORDS_BEFORE_CUT:], _MIN_WORDS_BEFORE_CUT):
            if word.group().strip().lower() in _CLAUSE_STARTS:
                return word.start()
            if i >= self.first_words:
                break
        complete = [word for word in words if word.group()[-1].isspace()]
        if len(complete) >= self.first_words:
            return complete[self.first_words - 1].end()
        return None
