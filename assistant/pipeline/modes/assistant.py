"""The voice assistant: microphone -> (echo canceller) -> VAD -> Whisper -> chat backend ->
voice -> speaker.

This mode is a composition of stage handlers plus the controls the window and the
terminal drive it with (push-to-talk, listening mode, a typed question, Stop).
"""

from __future__ import annotations

from assistant.audio.sinks import AudioSink
from assistant.audio.sources import AudioSource
from assistant.config import AssistantConfig
from assistant.echo.setup import echo_setup
from assistant.events import FinalTranscript, State, StateChanged
from assistant.pipeline.engines import Engines
from assistant.pipeline.handlers.echo_cancelling import cancelling_stages
from assistant.pipeline.handlers.endpointing import Endpointing, VadModel
from assistant.pipeline.handlers.playback import Playback
from assistant.pipeline.handlers.recognition import Recognition
from assistant.pipeline.handlers.replying import Replying
from assistant.pipeline.handlers.voicing import Voicing
from assistant.pipeline.items import Ask
from assistant.pipeline.modes.base import Mode
from assistant.pipeline.runner import Runner
from assistant.pipeline.stage import StageContext

LISTENING_MODES = ("hands-free", "push-to-talk")


class Assistant(Mode):
    def __init__(
        self,
        config: AssistantConfig,
        engines: Engines,
        source: AudioSource,
        sink: AudioSink,
        *,
        partial_every_s: float = 0.0,
        vad: VadModel | None = None,
    ) -> None:
        if vad is None:
            from assistant.vad import SileroVad

            vad = SileroVad()
        engines.adopt(config)
        self.config = config
        self.engines = engines
        self.ctx = StageContext(config)
        self.echo = echo_setup(config, sink)
        self.ctx.subscribe(self.echo.policy.follow)
        self._endpointing = Endpointing(
            self.ctx, vad, partial_every_s=partial_every_s, barge_in=self.echo.policy
        )
        self.runner = Runner(
            self.ctx,
            source,
            [
                *cancelling_stages(self.ctx, self.echo),
                self._endpointing,
                Recognition(self.ctx, engines.recognizer),
                Replying(self.ctx, engines.chat),
                Voicing(self.ctx, engines.tts),
                Playback(self.ctx, sink),
            ],
        )

    @property
    def busy(self) -> bool:
        return self.ctx.turns.busy

    def push_to_talk(self, down: bool) -> None:
        """Press or release the talk button; applied at the audio captured at this instant."""
        self._endpointing.control("ptt", down)

    def set_mode(self, mode: str) -> None:
        """Switch to "hands-free" or "push-to-talk" while running."""
        if mode not in LISTENING_MODES:
            raise ValueError(f"unknown listening mode {mode!r}")
        self._endpointing.control("mode", mode)

    def ask(self, text: str) -> int:
        """Answer typed text as if it had been spoken; returns the new turn."""
        ctx = self.ctx
        ticket = ctx.new_turn("barge-in")
        ctx.confirm(ticket)
        ctx.emit(FinalTranscript(ticket.turn, text, self.config.asr.language or ""))
        ctx.emit(StateChanged(ticket.turn, State.THINKING))
        self.runner.put("llm", Ask(ticket, text))
        return ticket.turn

    def stop_speaking(self) -> None:
        """Drop the current reply (LLM, TTS and playback) at once."""
        ticket = self.ctx.new_turn("stop")
        self.ctx.emit(StateChanged(ticket.turn, State.LISTENING))
