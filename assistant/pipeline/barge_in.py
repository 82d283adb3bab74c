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

import enum
import re
import threading
from collections.abc import Callable

from assistant.audio.playback_reference import PlaybackReference
from assistant.echo.presence import EchoPresence
from assistant.events import Event, FinalTranscript, ReplyToken

_AUDIBLE_DB = -50.0  # quieter than this is no echo worth fearing
_TAIL_S = 0.5  # the room's reverberation and the output buffers, after the last sample
_WORD = re.compile(r"[^\W\d_]+|\d+")
_SPOKEN_CHARS = 2000  # of the reply kept to compare with (more than it says in a minute)
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

    def judge(self, heard: str, seconds: float) -> bool:
        """Whether a probe's transcript of ``seconds`` of audio is the user (True) rather
        than the echo."""
        return True

    def checking(self, active: bool) -> None:
        """Speech over the reply is being checked (``active``), or no longer."""

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
    max_words_per_s = 4.0
    echo_share = 0.5  # this share of its word pairs in what the assistant says: its echo

    def __init__(
        self,
        reference: PlaybackReference | None = None,
        duck: Callable[[bool], None] | None = None,
        presence: EchoPresence | None = None,
    ) -> None:
        super().__init__(reference)
        self._duck = duck
        self._presence = presence
        self._spoken = ""  # the reply so far (tokens split words: joined before splitting)
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

    def judge(self, heard: str, seconds: float) -> bool:
        # Word pairs, not words: any reply is full of "the", "it" and "is", but an echo
        # repeats the reply's own phrases, where the user's question has new ones.
        words = words_of(heard)
        # a CJK character is about half a word's time (Mandarin: 4-6 a second)
        units = sum(0.5 if _CJK.match(word) else 1.0 for word in words)
        if not self.min_words <= len(words) or units > self.max_words_per_s * seconds:
            return False
        with self._lock:
            said = [_stem(word) for word in words_of(self._spoken)]
        stems = [_stem(word) for word in words]
        spoken = set(zip(said, said[1:], strict=False))
        pairs = list(zip(stems, stems[1:], strict=False))
        echoed = sum(pair in spoken for pair in pairs)
        return echoed < self.echo_share * len(pairs)

    def follow(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, FinalTranscript):
                self._spoken = ""
            elif isinstance(event, ReplyToken):
                self._spoken = (self._spoken + event.text)[-_SPOKEN_CHARS:]


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
