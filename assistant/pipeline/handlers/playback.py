"""Audio to the speaker, only for a confirmed attempt and never after a newer turn.

A speculative reply's audio waits here until its turn is confirmed. The check that the
attempt is still current and the hand-over to the speaker happen under the turn state's
lock, the same lock under which a new attempt clears the speaker, so no chunk of an old
reply can be queued after the clear.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from assistant.audio.resample import resample
from assistant.audio.sinks import AudioSink
from assistant.errors import AudioDeviceError
from assistant.events import (
    AudioFinished,
    AudioStarted,
    ErrorOccurred,
    PhrasePlaying,
    State,
    StateChanged,
    TurnTimings,
)
from assistant.pipeline.items import Speech
from assistant.pipeline.stage import Handler, StageContext
from assistant.pipeline.turns import Ticket


class SpeakerStage(Handler):
    """A stage that plays into ``sink``: opened with the pipeline (a speaker missing is
    reported, not fatal: captions and typed questions still work), emptied whenever a new
    attempt starts, closed at shutdown."""

    def __init__(self, ctx: StageContext, sink: AudioSink) -> None:
        super().__init__(ctx)
        self.sink = sink
        ctx.turns.on_new_attempt(sink.clear)

    def start(self) -> None:
        try:
            self.sink.start()
        except AudioDeviceError as exc:
            self.ctx.emit(ErrorOccurred(0, "audio-out", str(exc)))

    def close(self) -> None:
        self.sink.close()


class Playback(SpeakerStage):
    name = "playback"

    def process(self, item: Speech) -> Iterator[None]:
        ctx, ticket = self.ctx, item.ticket
        if not ctx.turns.wait_confirmed(ticket):
            return
        if item.samples is None:
            self._drain(ticket)
            return
        turn = ticket.turn
        first = not ctx.timer.has(turn, "queued_audio")
        ctx.timer.mark(turn, "queued_audio", time.monotonic())
        try:
            if not self.sink.sample_rate:
                raise AudioDeviceError("no speaker is open: the reply cannot be played")
            samples = resample(item.samples, item.rate, self.sink.sample_rate)
            with ctx.turns.lock:
                if ctx.turns.is_current(ticket):
                    self.sink.play(samples, self._on_start(ticket, first, item.begins))
        except AudioDeviceError as exc:
            ctx.publish(ticket, ErrorOccurred(turn, "audio-out", str(exc)), finishes=True)
        yield from ()

    def _on_start(self, ticket: Ticket, first: bool, phrase: str):
        """What to do when the chunk's first sample plays: the reply has started (its
        first chunk), a phrase has (what the barge-in policy compares speech with)."""
        if not first and not phrase:
            return None

        def started(at: float) -> None:
            ctx, turn = self.ctx, ticket.turn
            if first and ctx.turns.started_playing(ticket):
                ctx.timer.mark(turn, "first_sample", at)
                ctx.emit(AudioStarted(turn, at))
                ctx.emit(StateChanged(turn, State.SPEAKING))
                ctx.emit(TurnTimings(turn, ctx.timer.timings_ms(turn)))
            if phrase:
                ctx.emit(PhrasePlaying(turn, phrase, at))

        return started

    def _drain(self, ticket: Ticket) -> None:
        """Wait for the reply to finish playing, unless a newer turn takes over."""
        ctx = self.ctx
        while ctx.turns.is_current(ticket) and not ctx.turns.stopped:
            if self.sink.wait_idle(0.05):
                break
        if ctx.turns.is_current(ticket):
            ctx.emit(AudioFinished(ticket.turn, interrupted=False))
            ctx.finish(ticket.turn)
