"""Dropping quiet Piper puts around a phrase where it is not a pause a speaker makes.

Piper starts each phrase with a few tens of milliseconds of near-silence and ends it with
~80-150 ms more. Between sentences that reads as a natural pause; before the reply's first
phrase it is only latency, and after a phrase cut between two words (ends_mid_sentence)
it is a stumble in the middle of a sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

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


def without_quiet_end(
    chunks: Iterable[np.ndarray], rate: int, threshold_db: float = -50.0, keep_ms: float = 30.0
) -> Iterator[np.ndarray]:
    """``chunks`` up to ``keep_ms`` after the last sample louder than ``threshold_db`` dBFS.

    Streams: only quiet audio is held back (until a later chunk shows whether the voice
    goes on after it), so a phrase arriving in pieces starts playing as soon as before.
    Audio with nothing loud in it is passed on whole: trimming it away would lose it.
    """
    threshold = 10 ** (threshold_db / 20)
    keep = int(rate * keep_ms / 1000)
    held: np.ndarray | None = None
    passed = False
    for samples in chunks:
        audio = samples if held is None else np.concatenate([held, samples])
        loud = np.flatnonzero(np.abs(audio) > threshold)
        cut = min(audio.size, int(loud[-1]) + 1 + keep) if loud.size else 0
        if cut:
            passed = True
            yield audio[:cut]
        held = audio[cut:]
    if not passed and held is not None and held.size:
        yield held
