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
