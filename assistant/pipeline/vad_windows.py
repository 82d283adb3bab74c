"""Audio blocks cut into voice-activity windows, for the stages that look for speech.

Blocks come in whatever size the device delivers; Silero judges fixed windows. Each
window comes with its capture time (from the block's stamp, counting back) and, where a
canceller keeps a second version for the recogniser, that version's same samples.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from assistant.audio.blocks import AudioBlock
from assistant.pipeline.stage import StageContext
from assistant.vad import WINDOW

VadModel = Callable[[np.ndarray], float]  # speech probability of one window


class VadWindows:
    def __init__(self, ctx: StageContext, vad: VadModel) -> None:
        self.ctx = ctx
        self._vad = vad
        self._rate = ctx.config.audio.sample_rate
        self._pending = np.zeros(0, dtype=np.float32)  # what voice activity is judged on
        self._pending_heard = np.zeros(0, dtype=np.float32)  # what is transcribed

    def split(self, block: AudioBlock) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """The whole windows now complete: (samples, heard samples, capture time)."""
        pending = np.concatenate([self._pending, block.samples])
        heard = np.concatenate([self._pending_heard, block.heard])
        n = pending.size // WINDOW
        windows = [
            (
                pending[i * WINDOW : (i + 1) * WINDOW],
                heard[i * WINDOW : (i + 1) * WINDOW],
                block.captured_at - (pending.size - (i + 1) * WINDOW) / self._rate,
            )
            for i in range(n)
        ]
        self._pending = pending[n * WINDOW :]
        self._pending_heard = heard[n * WINDOW :]
        return windows

    def probability(self, window: np.ndarray) -> float:
        """Silero's speech probability; a failing VAD is reported once per window and
        counts as silence, so the stage goes on."""
        try:
            return self._vad(window)
        except Exception as exc:
            self.ctx.fail("vad", self.ctx.turns.current, exc)
            return 0.0
