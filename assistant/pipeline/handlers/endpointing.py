"""Voice activity to turns: microphone blocks in, audio to transcribe out.

This stage decides when the user starts, pauses and stops talking, which is what
begins, speculates, retries and confirms turns. Push-to-talk presses and mode switches
arrive as controls stamped with the moment they happened; each is applied at the audio
captured at that moment, even when this worker is behind.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator

import numpy as np

from assistant.audio.blocks import AudioBlock
from assistant.events import SpeechEnded, SpeechStarted, State, StateChanged
from assistant.pipeline.items import Heard
from assistant.pipeline.stage import Handler, StageContext
from assistant.vad import (
    WINDOW,
    Endpointer,
    SpeechPaused,
    SpeechProgress,
    SpeechResumed,
    SpeechStart,
    Utterance,
)

VadModel = Callable[[np.ndarray], float]  # speech probability of one window


class Endpointing(Handler):
    name = "vad"

    def __init__(self, ctx: StageContext, vad: VadModel, *, partial_every_s: float = 0.0):
        super().__init__(ctx)
        self._vad = vad
        self._endpointer = Endpointer(ctx.config.vad, progress_every_s=partial_every_s)
        self._controls: queue.Queue[tuple[str, object, float]] = queue.Queue()
        self._due: list[tuple[str, object, float]] = []
        self._pending = np.zeros(0, dtype=np.float32)

    def control(self, kind: str, value: object) -> None:
        """``("ptt", pressed)`` or ``("mode", name)``, applied at the audio of this instant."""
        self._controls.put((kind, value, time.monotonic()))

    def ticket(self, item):
        return None  # microphone blocks belong to no turn

    def process(self, block: AudioBlock) -> Iterator[Heard]:
        while not self._controls.empty():
            self._due.append(self._controls.get())
        pending = np.concatenate([self._pending, block.samples])
        rate = self.ctx.config.audio.sample_rate
        n = pending.size // WINDOW
        for i in range(n):
            window = pending[i * WINDOW : (i + 1) * WINDOW]
            at = block.captured_at - (pending.size - (i + 1) * WINDOW) / rate
            while self._due and self._due[0][2] <= at:
                yield from self._apply(*self._due.pop(0))
            if self.ctx.turns.take_finish_early():
                self._endpointer.end_early(self.ctx.config.vad.finished_silence_ms)
            try:
                prob = self._vad(window)
            except Exception as exc:
                self.ctx.fail("vad", self.ctx.turns.current, exc)
                prob = 0.0
            for event in self._endpointer.process(window, prob, at):
                yield from self._on_vad_event(event)
        self._pending = pending[n * WINDOW :]

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
            if not turns.speech_started(ctx.config.vad.barge_in or self._ptt):
                return
            ticket = ctx.new_turn("barge-in")
            ctx.emit(SpeechStarted(ticket.turn, event.at))
            ctx.emit(StateChanged(ticket.turn, State.HEARING))
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
