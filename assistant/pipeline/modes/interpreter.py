"""The live interpreter: input -> (echo canceller) -> segments -> live captions ->
translation -> voice -> speaker.

A second composition of the pipeline's stage handlers beside the assistant. The input is
the microphone or what the computer plays (a call, a video); captions in both languages
go out as events and into ``record`` (for export), the translation is read aloud in the
target language's voice unless speaking is off.

The app must never translate its own voice: with a canceller running, its voice is taken
out of the microphone and a segment that is still the spoken translation (by its level
or its words) is dropped (``EchoGuard``); where none can run, and on the system-audio input (see
``echo_setup``), the input counts as silence while the translation plays (half duplex).
"""

from __future__ import annotations

from assistant.audio.sinks import AudioSink
from assistant.audio.sources import AudioSource
from assistant.config import AssistantConfig
from assistant.echo.setup import echo_setup
from assistant.interpret.echo_guard import EchoGuard
from assistant.interpret.engines import InterpreterEngines
from assistant.interpret.lag import SegmentLag
from assistant.interpret.record import CaptionRecord
from assistant.pipeline.barge_in import HalfDuplex
from assistant.pipeline.handlers.captioning import Captioning
from assistant.pipeline.handlers.echo_cancelling import cancelling_stages
from assistant.pipeline.handlers.segmenting import Segmenting, VadModel
from assistant.pipeline.handlers.speaking import Speaking
from assistant.pipeline.handlers.spoken_playback import SpokenPlayback
from assistant.pipeline.handlers.translating import Translating
from assistant.pipeline.modes.base import Mode
from assistant.pipeline.runner import Runner
from assistant.pipeline.stage import StageContext

_AHEAD_S = 0.15


class Interpreter(Mode):
    def __init__(
        self,
        config: AssistantConfig,
        engines: InterpreterEngines,
        source: AudioSource,
        sink: AudioSink,
        *,
        vad: VadModel | None = None,
    ) -> None:
        if vad is None:
            from assistant.vad import SileroVad

            vad = SileroVad()
        config.validate()
        self.config = config
        self.engines = engines
        self.ctx = StageContext(config)
        # Nothing here is speculative: every attempt is confirmed from its start.
        self.ctx.confirm(self.ctx.turns.current)
        self.record = CaptionRecord()
        self.lag = SegmentLag()
        self.echo = echo_setup(config, sink, source)
        guard = EchoGuard(self.echo.double_talk)
        in_a_room = self.echo.reference is not None  # the input may hear the voice
        half_duplex = isinstance(self.echo.policy, HalfDuplex)
        self._translating = Translating(self.ctx, engines.translator, self.record, self.lag)
        self.runner = Runner(
            self.ctx,
            source,
            [
                *cancelling_stages(self.ctx, self.echo),
                Segmenting(
                    self.ctx,
                    vad,
                    muted=self._while_speaking if half_duplex else lambda at: False,
                    on_end=self.lag.ended,
                ),
                Captioning(
                    self.ctx,
                    engines.recognizer,
                    self.record,
                    is_echo=guard.is_echo if in_a_room else lambda text, start, end: False,
                    on_final=lambda index, at: self.lag.mark(index, "caption", at),
                ),
                self._translating,
                Speaking(self.ctx, engines.voice.engine),
                SpokenPlayback(self.ctx, sink, self.lag, spoken=guard.spoken),
            ],
        )

    @property
    def description(self) -> str:
        return f"{self.engines.describe()} · {self.echo.description}"

    def _while_speaking(self, at: float) -> bool:
        # a little ahead too: on the monitor the voice can be recorded before its time
        return self._translating.speak and self.echo.policy.audible(at + _AHEAD_S)

    def set_speak(self, on: bool) -> None:
        """Read translations aloud (True) or show captions only, from the next segment."""
        self._translating.speak = on
        if not on:
            self.stop_speaking()

    def stop_speaking(self) -> None:
        """Silence the translation playing now and drop those queued behind it."""
        self.ctx.confirm(self.ctx.new_turn("stop"))
