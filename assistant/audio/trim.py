"""Dropping quiet Piper puts around a phrase where it is not a pause a speaker makes.

Piper starts each phrase with a few tens of milliseconds of near-silence and ends it with
~80-150 ms more. Between sentences that reads as a natural pause; before the reply's first
phrase it is only latency, and after a phrase cut between two words (ends_mid_sentence)
it is a stumble in the middle of a sentence.
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


def trim_quiet_end(
    samples: np.ndarray, rate: int, threshold_db: float = -50.0, keep_ms: float = 30.0
) -> np.ndarray:
    """``samples`` up to ``keep_ms`` after the last one louder than ``threshold_db`` dBFS."""
    loud = np.flatnonzero(np.abs(samples) > 10 ** (threshold_db / 20))
    if loud.size == 0:
        return samples
    return samples[: int(loud[-1]) + 1 + int(rate * keep_ms / 1000)]
