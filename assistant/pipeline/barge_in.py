"""Whether speech heard while the assistant talks interrupts it.

On loudspeakers the microphone hears the assistant as well as the user. An echo
canceller takes most of the assistant's voice out, but what it leaves, and the moments
it is still learning the room, can read as speech to a VAD; an assistant that stops for
that answers itself. So while its voice is audible (the far end played within the last
``tail_s``, which covers the room's reverberation and the device buffers):

- ``Immediate``: any speech interrupts, as with headphones (``audio.echo = "off"``);
- ``WordsFirst``: with a canceller, speech interrupts once the recogniser finds words in
  it that the assistant is not saying itself; Silero calling it speech is not enough
  (unless the microphone hears no echo at all: headphones, ``EchoPresence``);
- ``HalfDuplex``: without one, speech that starts while it is audible is not listened to.
"""

from __future__ import annotations

import collections
import enum
import logging
import math
import re
import threading
from collections.abc import Callable

from rapidfuzz import fuzz

from assistant.audio.playback_reference import PlaybackReference
from assistant.echo.double_talk import DoubleTalk
from assistant.echo.presence import EchoPresence
from assistant.events import Event, FinalTranscript, PhrasePlaying

log = logging.getLogger(__name__)
_AUDIBLE_DB = -50.0  # quieter than this is no echo worth fearing
_TAIL_S = 0.5  # the room's reverberation and the output buffers, after the last sample
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+")  # "I'm" is one word
_PHRASES_KEPT = 64  # of the reply, as played (more than it says in a minute)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


class Verdict(enum.Enum):
    INTERRUPT = "interrupt"
    IGNORE = "ignore"
    CHECK = "check"  # ask the recogniser first


class BargeInPolicy:
    name = "immediate"
    # Recogniser probes: after how much speech (seconds since it started) each one runs.
    probes_s: tuple[float, ...] = ()

    def __init__(self, reference: PlaybackReference | None = None) -> None:
        self.reference = reference

    def audible(self, at: float) -> bool:
        """Whether the assistant's voice may be in what the microphone caught at ``at``."""
        if self.reference is None:
            return False
        return self.reference.level_db(at - _TAIL_S, at) > _AUDIBLE_DB

    def on_speech(self, at: float) -> Verdict:
        return Verdict.INTERRUPT

    def judge(self, heard: str, start: float, end: float) -> bool:
        """Whether a probe's transcript of the audio captured from ``start`` to ``end``
        is the user (True) rather than the echo."""
        return True

    def checking(self, active: bool) -> None:
        """Speech over the reply is being checked (``active``), or no longer."""

    def may_be_voice(self, start: float, end: float) -> bool:
        """Whether what was captured between ``start`` and ``end``, which the voice
        detector calls speech, is louder than the reply's echo could be: someone may be
        starting to talk over it (worth making room for, ``checking(True)``, before the
        detector is sure)."""
        return False

    def voice_onset(self, start: float, end: float) -> float | None:
        """When, between ``start`` and ``end``, a person began to talk over the reply, as
        far as its level tells (words aside); None if it does not tell."""
        return None

    def follow(self, event: Event) -> None:
        """Every pipeline event (a policy may keep track of what is being said)."""


class Immediate(BargeInPolicy):
    pass


class HalfDuplex(BargeInPolicy):
    name = "half duplex"

    def on_speech(self, at: float) -> Verdict:
        return Verdict.IGNORE if self.audible(at) else Verdict.INTERRUPT


class WordsFirst(BargeInPolicy):
    name = "words first"
    probes_s = (0.6, 1.2)
    min_words = 2  # one word is as often a residue of the echo ("you", "the")
    # More words than anyone says in the time: Whisper made them up from the residue
    # ("to address the most important issues that we have in the US." from 2 s of echo).
    # The words at either end of a clip may be cut short yet heard whole, Whisper
    # completing them ("I'm in the capital of France." from 1.1 s of a question): two
    # words of slack.
    max_words_per_s = 4.0
    edge_words = 2
    echo_share = 0.5  # this share of its word pairs in what the assistant says: its echo

    # Whisper hears the echo's phrases as other words that sound alike ("various plays"
    # for "mysterious place"): letters this similar (rapidfuzz's partial ratio, 0-100) to
    # what the speaker was saying meanwhile are its echo.
    echo_likeness = 65.0
    # The level says what the words cannot: frames louder than any echo of what was
    # playing (``DoubleTalk``). Whisper hears words in a residue of echo; a person
    # talking over the reply is, for some of its frames, far above it.
    min_frames_over_echo = 2
    # A window the voice detector calls speech that is this much louder than the echo
    # could be: likely someone starting to talk, whose voice the canceller may then take
    # out with the echo. Echo alone, with the room known, stays within about 1 dB of its
    # estimate.
    voice_over_db = 2.0
    # Or the level test heard someone this recently (frames 10 dB over the echo, which
    # the echo alone never gives): the voice goes on though this window's share of it
    # stands out less.
    recent_voice_s = 0.5

    def __init__(
        self,
        reference: PlaybackReference | None = None,
        duck: Callable[[bool], None] | None = None,
        presence: EchoPresence | None = None,
        *,
        double_talk: DoubleTalk | None = None,
    ) -> None:
        super().__init__(reference)
        self._duck = duck
        self._presence = presence
        self._double_talk = double_talk
        self._phrases: collections.deque[tuple[float, str]] = collections.deque(
            maxlen=_PHRASES_KEPT
        )  # (when it began to play, its text), oldest first
        self._lock = threading.Lock()

    def on_speech(self, at: float) -> Verdict:
        echo_possible = self._presence is None or self._presence.present  # not headphones
        return Verdict.CHECK if echo_possible and self.audible(at) else Verdict.INTERRUPT

    def checking(self, active: bool) -> None:
        # The reply is played quieter while its words are checked: an echo canceller
        # suppresses the near end hardest while the far end is loud, which is exactly
        # when the user's first words must get through.
        if self._duck is not None:
            self._duck(active)

    def may_be_voice(self, start: float, end: float) -> bool:
        echo_possible = self._presence is None or self._presence.present
        if self._duck is None or self._double_talk is None or not echo_possible:
            return False
        if not self.audible(end):
            return False
        excess = self._double_talk.excess_db(start, end)
        if excess is not None and excess >= self.voice_over_db:
            return True
        recent = self._double_talk.frames_over_echo(end - self.recent_voice_s, end)
        return recent >= self.min_frames_over_echo

    def judge(self, heard: str, start: float, end: float) -> bool:
        words = words_of(heard)
        # a CJK character is about half a word's time (Mandarin: 4-6 a second)
        units = sum(0.5 if _CJK.match(word) else 1.0 for word in words)
        most = self.max_words_per_s * (end - start) + self.edge_words
        if not self.min_words <= len(words) or units > most:
            log.debug("%r: too few words, or too many for %.1f s", heard, end - start)
            return False
        if (
            self._double_talk is not None
            and self._double_talk.frames_over_echo(start, end) < self.min_frames_over_echo
        ):
            log.debug("%r: no voice louder than the echo", heard)
            return False
        # Sounding alike is judged against what was playing meanwhile only: the longer
        # the text, the more of anyone's words it holds by chance.
        playing = words_of(self.said_between(start - _TAIL_S, end))
        if fuzz.partial_ratio(" ".join(words), " ".join(playing)) >= self.echo_likeness:
            log.debug("%r: sounds like what was playing", heard)
            return False
        # Word pairs, not words: any reply is full of "the", "it" and "is", but an echo
        # repeats the reply's own phrases, where the user's question has new ones.
        said = words_of(self.said_between(-math.inf, end))  # the reply so far
        spoken = set(pairs_of([_stem(word) for word in said]))
        pairs = pairs_of([_stem(word) for word in words])
        echoed = sum(pair in spoken for pair in pairs)
        if echoed >= self.echo_share * len(pairs):
            log.debug("%r: the reply's own phrases", heard)
            return False
        return True

    def voice_onset(self, start: float, end: float) -> float | None:
        if self._double_talk is None:
            return None
        return self._double_talk.first_over_echo(start, end, self.min_frames_over_echo)

    def said_between(self, start: float, end: float) -> str:
        """The phrases the speaker was playing between ``start`` and ``end`` (each plays
        until the next begins)."""
        with self._lock:
            phrases = list(self._phrases)
        playing = [i for i, (at, _) in enumerate(phrases) if at <= start]
        first = playing[-1] if playing else 0
        return " ".join(text for at, text in phrases[first:] if at <= end)

    def follow(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, FinalTranscript):  # a new turn: a new reply to come
                self._phrases.clear()
            elif isinstance(event, PhrasePlaying):
                self._phrases.append((event.at, event.text))


def pairs_of(words: list[str]) -> list[tuple[str, str]]:
    return list(zip(words, words[1:], strict=False))


def _stem(word: str) -> str:
    # The recogniser hears the echo's words with other endings ("the oceans create" for
    # "the ocean's creation"): pairs are compared on their first four letters.
    return word[:4]


def words_of(text: str) -> list[str]:
    """Lower-case words; each CJK character counts as one (no spaces to split on)."""
    words = []
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            words += list(word)
        else:
            words.append(word)
    return words
