"""Voice activity to turns: microphone blocks in, audio to transcribe out.

This stage decides when the user starts, pauses and stops talking, which is what
begins, speculates, retries and confirms turns. Push-to-talk presses and mode switches
arrive as controls stamped with the moment they happened; each is applied at the audio
captured at that moment, even when this worker is behind.

Speech that starts while the assistant's voice is audible goes to the mode's barge-in
policy (``assistant/pipeline/barge_in.py``): it interrupts at once, is not listened to,
or is checked first: the recogniser is asked for its words (``Probe``) after a little of
it, and the turn is cut only if they are the user's, dated from when the speech began.
A window that may be a voice starting over the reply makes the reply quieter at once,
before speech is confirmed (``_listen_closer``).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from assistant.audio.blocks import AudioBlock
from assistant.events import SpeechEnded, SpeechStarted, State, StateChanged
from assistant.pipeline.barge_in import BargeInPolicy, Immediate, Verdict
from assistant.pipeline.items import Heard, Probe
from assistant.pipeline.stage import Handler, StageContext
from assistant.pipeline.vad_windows import VadModel, VadWindows
from assistant.vad import (
    WINDOW,
    Endpointer,
    SpeechPaused,
    SpeechProgress,
    SpeechResumed,
    SpeechStart,
    Utterance,
)

log = logging.getLogger(__name__)
_VERDICT_WAIT_S = 5.0  # a probe's words, once the utterance is over
_JOIN_S = 1.5  # speech over the reply this soon after earlier speech continues it
_ONSET_MARGIN_S = 0.3  # a voice starts softer than the frames that stand out from the echo
# How long the reply makes room for a voice the detector is not yet sure of
# (``_listen_closer``): enough for it to confirm speech, which the canceller, thrown by
# the sudden drop of the far end, can take most of a second to pass.
_CLOSER_S = 1.0
_RECENT_S = 2.5  # of the words channel kept, for a check to reach back to where room was made


@dataclass
class _Check:
    """Speech over the assistant's voice whose words are being checked."""

    at: float  # when the speech started
    probes_s: list[float] = field(default_factory=list)  # seconds of speech: when to probe
    outstanding: bool = False
    probed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # latest probe's
    # Speech over the reply that ended just before this began (a pause inside one
    # question, made longer by the canceller's suppression): the same question's start.
    before: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


class Endpointing(Handler):
    name = "vad"

    def __init__(
        self,
        ctx: StageContext,
        vad: VadModel,
        *,
        partial_every_s: float = 0.0,
        barge_in: BargeInPolicy | None = None,
    ):
        super().__init__(ctx)
        self._barge_in = barge_in or Immediate()
        self._check: _Check | None = None
        self._verdicts: queue.Queue[bool] = queue.Queue()
        self._earlier: tuple[np.ndarray, float] | None = None  # (audio, end) not taken
        self._closer_until: float | None = None  # the reply makes room for a voice until
        self._closer_since: float | None = None  # start of the window that looked like one
        rate = ctx.config.audio.sample_rate
        self._recent: collections.deque[tuple[float, np.ndarray]] = collections.deque(
            maxlen=round(_RECENT_S * rate / WINDOW)
        )  # (capture time of its end, the words channel's window)
        self._endpointer = Endpointer(ctx.config.vad, progress_every_s=partial_every_s)
        self._controls: queue.Queue[tuple[str, object, float]] = queue.Queue()
        self._due: list[tuple[str, object, float]] = []
        self._windows = VadWindows(ctx, vad)

    def control(self, kind: str, value: object) -> None:
        """``("ptt", pressed)`` or ``("mode", name)``, applied at the audio of this instant."""
        self._controls.put((kind, value, time.monotonic()))

    def ticket(self, item):
        return None  # microphone blocks belong to no turn

    def process(self, block: AudioBlock) -> Iterator[Heard]:
        while not self._controls.empty():
            self._due.append(self._controls.get())
        for window, words, at in self._windows.split(block):
            self._recent.append((at, words))
            while self._due and self._due[0][2] <= at:
                yield from self._apply(*self._due.pop(0))
            if self.ctx.turns.take_finish_early():
                self._endpointer.end_early(self.ctx.config.vad.finished_silence_ms)
            prob = self._windows.probability(window)
            for event in self._endpointer.process(words, prob, at):
                yield from self._on_vad_event(event)
            if self._check is not None:
                self._closer_until = None  # the check keeps the room made for it
                yield from self._advance_check(at)
            else:
                self._listen_closer(prob, at)

    def _apply(self, kind: str, value, at: float) -> Iterator[Heard]:
        if kind == "mode":
            self._endpointer.set_mode(value)
            self.ctx.turns.utterance_dropped()
            return
        for event in self._endpointer.push_to_talk(bool(value), at):
            yield from self._on_vad_event(event)

    @property
    def _ptt(self) -> bool:
        return self.ctx.config.vad.mode == "push-to-talk"

    def _on_vad_event(self, event) -> Iterator[Heard]:
        ctx, turns = self.ctx, self.ctx.turns
        if isinstance(event, SpeechStart):
            may_interrupt = ctx.config.vad.barge_in or self._ptt
            if turns.busy and may_interrupt and not self._ptt:  # a press is no echo
                verdict = self._barge_in.on_speech(event.at)
                if verdict is Verdict.CHECK:
                    self._begin_check(event.at)
                    return
                may_interrupt = verdict is Verdict.INTERRUPT
            if turns.speech_started(may_interrupt):
                self._interrupt(event.at)
        elif self._check is not None:
            if isinstance(event, Utterance):
                yield from self._last_check(event)
        elif turns.ignoring(utterance_ended=isinstance(event, Utterance)):
            return
        elif isinstance(event, SpeechProgress):
            # Hands-free speech is confirmed before progress; push-to-talk audio is not.
            yield Heard(turns.current, event.audio, final=False, voiced=not self._ptt)
        elif isinstance(event, SpeechPaused):
            # Start on the reply now; it plays only once the silence confirms the turn.
            ticket = turns.paused()
            ctx.timer.mark(ticket.turn, "speech_end", event.speech_end_at, first=False)
            yield Heard(ticket, event.audio, final=True, voiced=True)
        elif isinstance(event, SpeechResumed):
            ctx.retry_turn()
        elif isinstance(event, Utterance):
            yield from self._end_of_turn(event)

    def _interrupt(self, at: float) -> None:
        ctx = self.ctx
        ticket = ctx.new_turn("barge-in")
        ctx.emit(SpeechStarted(ticket.turn, at))
        ctx.emit(StateChanged(ticket.turn, State.HEARING))

    # -- speech over the assistant's voice ------------------------------------------
    def _listen_closer(self, prob: float, at: float) -> None:
        """A voice may be starting over the reply: the detector calls a window speech
        that is louder than the echo could be (``may_be_voice``). The canceller, which
        suppresses the near end hardest while the far end is loud, may take most of it
        out with the echo, so that the detector never hears enough to confirm speech:
        the reply makes room for it at once (is ducked, as for a check) until speech is
        confirmed and a check begins, or for ``_CLOSER_S``. That check's audio starts
        back at the window heard."""
        if self._closer_until is not None:
            if at >= self._closer_until:
                self._closer_until = None
                self._barge_in.checking(False)
            return
        config = self.ctx.config.vad
        start = at - WINDOW / self.ctx.config.audio.sample_rate
        if (
            prob >= config.threshold
            and config.barge_in
            and not self._ptt
            and self.ctx.turns.busy
            and not self._endpointer.in_speech
            and self._barge_in.may_be_voice(start, at)
        ):
            self._barge_in.checking(True)
            self._closer_until = at + _CLOSER_S
            self._closer_since = start
            log.info("a voice may have begun over the reply: it is played quieter")

    def _begin_check(self, at: float) -> None:
        while not self._verdicts.empty():  # a late answer about earlier speech
            self._verdicts.get()
        self._check = _Check(at, list(self._barge_in.probes_s))
        if self._earlier is not None and at - self._earlier[1] < _JOIN_S:
            self._check.before = self._earlier[0]
        elif self._closer_since is not None and at - self._closer_since < _JOIN_S:
            # Room was made for a voice before the detector was sure of it (the canceller
            # was taking it out): the check's audio starts back there. Its probes keep
            # their times: one sooner would come before the level can tell the voice.
            self._check.before = self._words_between(
                self._closer_since - _ONSET_MARGIN_S,
                at - self._endpointer.heard().size / self.ctx.config.audio.sample_rate,
            )
        self._earlier = None
        self._closer_since = None
        self._barge_in.checking(True)
        log.debug(
            "speech over the reply: its words are checked (%.1f s carried)",
            self._check.before.size / self.ctx.config.audio.sample_rate,
        )

    def _words_between(self, start: float, end: float) -> np.ndarray:
        """The words channel's recent windows that began at ``start`` or later and ended
        by ``end`` (capture times)."""
        span = WINDOW / self.ctx.config.audio.sample_rate
        kept = [w for at, w in self._recent if at - span >= start - 1e-6 and at <= end + 1e-6]
        return np.concatenate(kept) if kept else np.zeros(0, np.float32)

    def _end_check(self) -> _Check:
        check = self._check
        assert check is not None
        self._check = None
        self._barge_in.checking(False)
        return check

    def _probe(self, audio: np.ndarray, end: float) -> Probe:
        """The recogniser's words for ``audio``, captured until ``end``, to be judged."""
        assert self._check is not None
        log.debug(
            "speech over the reply: %.1f s of it is transcribed",
            audio.size / self.ctx.config.audio.sample_rate,
        )
        self._check.outstanding = True
        self._check.probed = audio
        start = end - audio.size / self.ctx.config.audio.sample_rate
        return Probe(self.ctx.turns.current, audio, lambda heard: self._judge(heard, start, end))

    def _judge(self, heard: str, start: float, end: float) -> None:  # the recogniser's thread
        user = self._barge_in.judge(heard, start, end)
        log.info("speech over the reply: %r is %s", heard, "the user" if user else "its echo")
        self._verdicts.put(user)

    def _advance_check(self, at: float) -> Iterator[Probe]:
        check = self._check
        assert check is not None
        while not self._verdicts.empty():
            check.outstanding = False
            if self._verdicts.get():  # the user's words: the turn is theirs from the start
                self._end_check()
                self._endpointer.prepend(check.before)
                self.ctx.turns.speech_started(True)
                self._interrupt(check.at)
                return
        if check.outstanding:
            return
        if check.probes_s and at - check.at >= check.probes_s[0]:
            check.probes_s.pop(0)
            yield self._probe(np.concatenate([check.before, self._endpointer.heard()]), at)
        elif not check.probes_s:
            # Every probe heard the echo. Speech that goes on is checked afresh, not
            # ignored with it: while the canceller is still learning the room its echo
            # can keep the voice detector on for seconds, and the user's question then
            # comes inside that "utterance".
            onset = self._barge_in.voice_onset(check.at, at)
            self._end_check()
            heard = self._endpointer.heard().size
            dropped = self._endpointer.drop_utterance()
            if onset is not None:
                # The level heard someone start talking in it: from there on it is the
                # start of the question the next check hears, not echo to forget.
                rate = self.ctx.config.audio.sample_rate
                dropped_end = at - (heard - dropped.size) / rate  # the new pre-roll follows
                carried = round((dropped_end - onset + _ONSET_MARGIN_S) * rate)
                if carried > 0:
                    self._earlier = (dropped[-carried:], at)

    def _last_check(self, event: Utterance) -> Iterator[Probe | Heard]:
        """The utterance ended while its words were being checked: decide on all of it."""
        check = self._check
        assert check is not None
        audio = np.concatenate([check.before, event.audio])
        if check.probed.size > audio.size:
            # The endpointer, on the canceller's output, cut words off as silence that the
            # probe, on the words channel, heard: those are the question's last words.
            audio = check.probed
        if not check.outstanding:
            yield self._probe(audio, event.decided_at)
        self._end_check()
        try:
            user = self._verdicts.get(timeout=_VERDICT_WAIT_S)
        except queue.Empty:
            user = False
        if user:
            self.ctx.turns.speech_started(True)
            self._interrupt(check.at)
            yield from self._end_of_turn(dataclasses.replace(event, audio=audio))
        else:  # kept a moment: more speech may follow that shows it was the user
            self._earlier = (audio, event.decided_at)

    def _end_of_turn(self, event: Utterance) -> Iterator[Heard]:
        ctx = self.ctx
        ticket, needs_transcript = ctx.turns.speech_ended()
        ctx.timer.mark(ticket.turn, "speech_end", event.speech_end_at, first=False)
        ctx.timer.mark(ticket.turn, "endpoint", event.decided_at)
        duration = event.audio.size / ctx.config.audio.sample_rate
        ctx.emit(SpeechEnded(ticket.turn, event.speech_end_at, duration))
        ctx.emit(StateChanged(ticket.turn, State.THINKING))
        if needs_transcript:
            yield Heard(ticket, event.audio, final=True, voiced=not self._ptt)
        ctx.confirm(ticket)
