"""The echo canceller as a stage: microphone blocks in, the same blocks without the
assistant's own voice out, before voice activity is looked for in them.

Each 10 ms frame of the microphone goes through the canceller with the far end of the
same interval (what the speaker played then, from ``PlaybackReference``), so the
canceller sees what was played before the echo of it arrives. Both ends are timed by
counting their samples from an anchor, not by when each block happened to arrive: audio
callbacks come in bursts, and far-end frames looked up by arrival times would be a
jittered copy of what was played, which no canceller can subtract. Where the
microphone hears no echo at all (headphones: ``EchoPresence``), it passes unchanged.

With a second canceller for words, each block carries two versions: the first
canceller's (the least echo: what voice activity is looked for in) and the second's
(the user's words kept best when both talk: what the recogniser hears).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from assistant.audio.blocks import AudioBlock
from assistant.audio.playback_reference import PlaybackReference
from assistant.echo.base import EchoCanceller
from assistant.echo.double_talk import DoubleTalk
from assistant.echo.presence import EchoPresence
from assistant.pipeline.stage import Handler, StageContext

log = logging.getLogger(__name__)
_REANCHOR_S = 0.2  # blocks this much later than the count says: the stream restarted
# The anchor moved by more than the level test's margin around the echo's delay: that
# delay, as the microphone's times now read, is not the one learnt.
_TIMING_MOVED_S = 0.02


class EchoCancelling(Handler):
    name = "aec"

    def __init__(
        self,
        ctx: StageContext,
        canceller: EchoCanceller,
        reference: PlaybackReference,
        presence: EchoPresence | None = None,
        words: EchoCanceller | None = None,
        double_talk: DoubleTalk | None = None,
    ) -> None:
        super().__init__(ctx)
        self.canceller = canceller
        self.words = words
        self.reference = reference
        self.presence = presence or EchoPresence()
        self.double_talk = double_talk
        self._pending = np.zeros(0, dtype=np.float32)
        self._origin: float | None = None  # when sample 0 of the stream was captured
        self._count = 0  # samples received so far

    def ticket(self, item):
        return None  # microphone blocks belong to no turn

    def close(self) -> None:
        self.canceller.close()
        if self.words is not None:
            self.words.close()

    def process(self, block: AudioBlock) -> Iterator[AudioBlock]:
        rate = self.ctx.config.audio.sample_rate
        frame = self.canceller.frame_samples
        self._count += block.samples.size
        # A block arrives at or after its last sample was captured, never before: the
        # earliest origin seen is the best, unless the stream was interrupted.
        origin = block.captured_at - self._count / rate
        before = self._origin
        if self._origin is None or origin - self._origin > _REANCHOR_S:
            self._origin = origin
        self._origin = min(self._origin, origin)
        moved = before is not None and abs(self._origin - before) > _TIMING_MOVED_S
        if moved and self.double_talk is not None:
            log.debug("the microphone's times moved by %+.3f s", self._origin - before)
            self.double_talk.timing_moved()  # the echo's delay moves with the anchor
        pending = np.concatenate([self._pending, block.samples])
        n = pending.size // frame
        if n == 0:
            self._pending = pending
            return
        first = self._origin + (self._count - pending.size) / rate  # pending[0]'s time
        cleaned = np.empty(n * frame, dtype=np.float32)
        words = np.empty(n * frame, dtype=np.float32) if self.words is not None else None
        for i in range(n):
            span = slice(i * frame, (i + 1) * frame)
            near = pending[span]
            at = first + i * frame / rate
            far = self.reference.far_end(at, frame)
            # Always run: the cancellers stay adapted to the room even while bypassed.
            out = self.canceller.process(near, far)
            kept = self.words.process(near, far) if self.words is not None else out
            self.presence.observe(near, far)
            if self.double_talk is not None:
                self.double_talk.observe(near, far, at)
            echo = self.presence.present
            cleaned[span] = out if echo else near
            if words is not None:
                words[span] = kept if echo else near
        self._pending = pending[n * frame :]
        yield AudioBlock(cleaned, block.captured_at - self._pending.size / rate, words)


def cancelling_stages(ctx: StageContext, echo) -> list[Handler]:
    """The canceller stage a mode puts first, or none (``echo`` is an ``EchoSetup``)."""
    if echo.canceller is None or echo.reference is None:
        return []
    return [
        EchoCancelling(
            ctx, echo.canceller, echo.reference, echo.presence, echo.words, echo.double_talk
        )
    ]
