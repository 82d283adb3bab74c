from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioBlock:
    """Mono float32 samples at the pipeline rate, stamped with when the last one was captured.

    The stamp (``time.monotonic()`` seconds) is what voice-to-voice latency is measured from.
    """

    samples: np.ndarray
    captured_at: float
    # What the recogniser should hear, where it differs from ``samples`` (which voice
    # activity is looked for in): an echo canceller that keeps the user's words best is
    # not the one that leaves the least echo for the VAD to mistake for speech.
    words: np.ndarray | None = None

    @property
    def heard(self) -> np.ndarray:
        return self.samples if self.words is None else self.words
