"""Voice activity to caption segments, for the interpreter: audio in, open segments out.

Unlike the assistant's turns, segments never wait for the pipeline: the speaker goes on
while the last segment is translated. A segment closes at a pause or, for a speaker who
never pauses, at the length cap; while it is open its audio so far goes out every
``interpret.partial_every_ms`` for a partial caption. Times are counted in samples from
the session's first block, so they match the recording exactly (for subtitles).

Where the app's own voice may be in the input and no canceller runs (half duplex), the
input is treated as silence while the voice is audible: a translation read aloud must
never be captioned and translated again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np

from assistant.audio.blocks import AudioBlock
from assistant.config import AssistantConfig, VadConfig
from assistant.events import State, StateChanged
from assistant.pipeline.items import SegmentAudio
from assistant.pipeline.stage import Handler, StageContext
from assistant.pipeline.vad_windows import VadModel, VadWindows
from assistant.vad import WINDOW, Endpointer, SpeechProgress, SpeechStart, Utterance


def segment_vad(config: AssistantConfig) -> VadConfig:
    """The VAD settings for segments: the assistant's thresholds, the interpreter's
    pauses and cap, and no speculation (nobody waits on a segment's end)."""
    interpret = config.interpret
    return dataclasses.replace(
        config.vad,
        mode="hands-free",
        end_silence_ms=interpret.end_silence_ms,
        speculate_after_ms=0,
        finished_silence_ms=0,
        max_utterance_s=interpret.max_segment_s,
        pre_roll_ms=min(config.vad.pre_roll_ms, 300),
    )


class Segmenting(Handler):
    name = "vad"

    def __init__(
        self,
        ctx: StageContext,
        vad: VadModel,
        *,
        muted: Callable[[float], bool] = lambda at: False,
        on_end: Callable[[int, float], None] = lambda index, at: None,
    ) -> None:
        super().__init__(ctx)
        self._on_end = on_end  # told each segment's index and its last voiced moment
        self._muted = muted
        self._endpointer = Endpointer(
            segment_vad(ctx.config), progress_every_s=ctx.config.interpret.partial_every_ms / 1000
        )
        self._rate = ctx.config.audio.sample_rate
        self._windows = VadWindows(ctx, vad)
        self._position = 0  # samples judged so far: the session's audio clock
        self._index = 0
        self._start = 0.0
        self._started_at = 0.0  # capture time of the open segment's confirmed start

    def ticket(self, item):
        return None

    def process(self, block: AudioBlock) -> Iterator[SegmentAudio]:
        for window, words, at in self._windows.split(block):
            self._position += WINDOW
            if self._muted(at):
                window = words = np.zeros(WINDOW, np.float32)
            prob = self._windows.probability(window)
            for event in self._endpointer.process(words, prob, at):
                yield from self._on_event(event, at)

    def _on_event(self, event, at: float) -> Iterator[SegmentAudio]:
        ticket = self.ctx.turns.current
        if isinstance(event, SpeechStart):
            self._index += 1
            self._start = (self._position - self._endpointer.heard().size) / self._rate
            self._started_at = event.at
            self.ctx.emit(StateChanged(ticket.turn, State.HEARING))
        elif isinstance(event, SpeechProgress):
            yield SegmentAudio(
                ticket, self._index, event.audio, self._start, False, at, self._started_at
            )
        elif isinstance(event, Utterance):
            self._on_end(self._index, event.speech_end_at)
            yield SegmentAudio(
                ticket,
                self._index,
                event.audio,
                self._start,
                True,
                event.speech_end_at,
                self._started_at,
                event.cut,
            )
            self.ctx.emit(StateChanged(ticket.turn, State.LISTENING))
