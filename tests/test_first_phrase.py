"""The reply's first phrase, cut between words to be heard sooner, still sounds whole."""

from __future__ import annotations

import numpy as np

from assistant.pipeline.handlers.voicing import phrase_audio

LOUD = 10 ** (-50 / 20)


def quiet_tail_ms(samples: np.ndarray, rate: int) -> float:
    loud = np.flatnonzero(np.abs(samples) > LOUD)
    return 1000 * (samples.size - 1 - loud[-1]) / rate


def test_a_phrase_cut_between_words_runs_on_without_piper_s_pause(engines):
    tts = engines.tts
    rate = tts.sample_rate
    cut = np.concatenate(list(phrase_audio(tts, "There are seven days")))
    whole = np.concatenate(list(phrase_audio(tts, "There are seven days.")))
    # Piper ends a phrase with ~100 ms of quiet; after "days" the sentence goes on.
    assert quiet_tail_ms(whole, rate) > 60
    assert quiet_tail_ms(cut, rate) <= 31
    # Only the quiet went: the voiced part is as long as Piper made it.
    assert np.flatnonzero(np.abs(cut) > LOUD).size > 0.75 * rate  # "There are seven days"
