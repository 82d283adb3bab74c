"""Keeps the interpreter from captioning its own spoken translation.

The echo canceller takes most of the voice out of the microphone, but what it leaves,
or a loud speaker it has not yet learnt (the session's first translation), can still be
heard as speech. Two tests catch it, and either drops a segment:

- the level: heard only while the translation played, and never louder than its echo
  could be (``DoubleTalk``). With the source language fixed, Whisper hears the echo of
  a French translation as English words that share nothing with it ("In the same way,
  I am in the same level."), so the words alone cannot tell;
- the words: mostly those of a translation that just played (the echo recognised in
  its own language).

Someone who talks over the translation is kept when their voice stands out from its
echo, or once they go on talking after it stops.
"""

from __future__ import annotations

import collections
import threading

from assistant.echo.double_talk import FRAME_S, DoubleTalk
from assistant.pipeline.barge_in import WordsFirst, words_of

_REMEMBER_S = 30.0  # spoken translations kept for the comparison
_SHARE = 0.6  # of a segment's words found in what was spoken: an echo
_ALONE_S = 0.5  # of a segment heard while the voice was silent: someone else talking
_ONSET_S = 0.5  # speech is confirmed this long after it began, at most


class EchoGuard:
    def __init__(self, double_talk: DoubleTalk | None = None) -> None:
        """With ``double_talk`` (fed by the canceller stage) the level test runs."""
        self._double_talk = double_talk
        self._lock = threading.Lock()
        self._spoken: collections.deque[tuple[float, set[str]]] = collections.deque()

    def spoken(self, text: str, at: float) -> None:
        """A translation started playing at ``at``."""
        with self._lock:
            self._spoken.append((at, set(words_of(text))))
            while self._spoken and self._spoken[0][0] < at - _REMEMBER_S:
                self._spoken.popleft()

    def is_echo(self, text: str, started_at: float, ended_at: float) -> bool:
        """Whether ``text``, heard from speech confirmed at ``started_at`` to its last
        voiced moment ``ended_at``, is the translation heard back."""
        return self.heard_only_echo(started_at, ended_at) or self._repeats_spoken(text, ended_at)

    def heard_only_echo(self, started_at: float, ended_at: float) -> bool:
        """Whether the voice played for all but a moment of the speech, and nothing in
        it was louder than the voice's echo."""
        double_talk = self._double_talk
        if double_talk is None:
            return False
        if double_talk.frames_speaker_silent(started_at, ended_at) * FRAME_S >= _ALONE_S:
            return False
        over = double_talk.frames_over_echo(started_at - _ONSET_S, ended_at)
        return over < WordsFirst.min_frames_over_echo

    def _repeats_spoken(self, text: str, ended_at: float) -> bool:
        words = words_of(text)
        if not words:
            return False
        with self._lock:
            recent = set().union(
                *(w for at, w in self._spoken if ended_at - _REMEMBER_S <= at <= ended_at)
            )
        if not recent:
            return False
        return sum(w in recent for w in words) / len(words) >= _SHARE
