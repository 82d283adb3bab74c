"""Spoken translations to the speaker, one after another, never cut by the next.

Unlike an assistant's reply, a translation is not replaced by a newer one: segments queue
and play in order. "Stop speaking" starts a new attempt, which empties the speaker and
drops whatever was still queued for the old one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from assistant.audio.resample import resample
from assistant.audio.sinks import AudioSink
from assistant.errors import AudioDeviceError
from assistant.events import AudioStarted, ErrorOccurred, SegmentTimings
from assistant.interpret.lag import SegmentLag
from assistant.pipeline.handlers.playback import SpeakerStage
from assistant.pipeline.items import SpokenAudio
from assistant.pipeline.stage import StageContext


class SpokenPlayback(SpeakerStage):
    name = "playback"

    def __init__(
        self,
        ctx: StageContext,
        sink: AudioSink,
        lag: SegmentLag,
        *,
        spoken: Callable[[str, float], None] = lambda text, at: None,
    ) -> None:
        super().__init__(ctx, sink)
        self._lag = lag
        self._spoken = spoken  # told each translation as it starts playing (echo guard)
        self._started: set[int] = set()

    def process(self, item: SpokenAudio) -> Iterator[None]:
        turn = item.ticket.turn
        if item.samples is None:
            self._started.discard(item.index)
            return
        first = item.index not in self._started
        self._started.add(item.index)
        try:
            if not self.sink.sample_rate:
                raise AudioDeviceError("no speaker is open: the translation cannot be spoken")
            samples = resample(item.samples, item.rate, self.sink.sample_rate)
            with self.ctx.turns.lock:
                if self.ctx.turns.is_current(item.ticket):
                    self.sink.play(samples, self._on_first_sample(item) if first else None)
        except AudioDeviceError as exc:
            self.ctx.emit(ErrorOccurred(turn, "audio-out", str(exc)))
        yield from ()

    def _on_first_sample(self, item: SpokenAudio):
        def started(at: float) -> None:
            turn = item.ticket.turn
            self._spoken(item.text, at)
            self.ctx.emit(AudioStarted(turn, at))
            lags = self._lag.mark(item.index, "speech", at)
            self.ctx.emit(SegmentTimings(turn, item.index, lags))

        return started
