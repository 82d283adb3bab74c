"""Dropping the quiet lead-in of a reply's first audio.

Piper starts each phrase with a few tens of milliseconds of near-silence. Between phrases
that reads as a natural pause; before the first one it is only latency the user hears.
"""

from __future__ import annotations

import numpy as np


def trim_quiet_start(
    samples: np.ndarray, rate: int, threshold_db: float = -50.0, keep_ms: float = 5.0
) -> np.ndarray:
    """``samples`` from ``keep_ms`` before the first one louder than ``threshold_db`` dBFS.

    All-quiet audio is returned whole: trimming it away would lose the phrase.
    """
    loud = np.flatnonzero(np.abs(samples) > 10 ** (threshold_db / 20))
    if loud.size == 0:
        return samples
    return samples[max(0, int(loud[0]) - int(rate * keep_ms / 1000)) :]
