"""The speaker sink on a real (virtual) device: short sounds play whole; clear() is immediate."""

from __future__ import annotations

import numpy as np
import pytest
from audio_env import Recorder
from live_helpers import last_sound, sound_seconds

from assistant.audio.sinks import SpeakerSink

pytestmark = pytest.mark.audio


def tone(seconds: float, rate: int, freq: float = 660.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def sink(pulse):
    sink = SpeakerSink()
    sink.start()
    yield sink
    sink.close()


@pytest.mark.parametrize("seconds", [0.15, 0.4])
def test_short_sounds_play_every_sample(sink, seconds):
    started = []
    with Recorder() as recorder:
        sink.play(tone(seconds, sink.sample_rate), started.append)
        assert sink.wait_idle(10)
        onset = recorder.wait_for_sound(threshold=0.1)
        recording = recorder.wait_until(onset + seconds + 0.5)
    played = sound_seconds(recording, onset - 0.05, onset + seconds + 0.5, threshold=0.1)
    assert abs(played - seconds) <= 0.03, (played, seconds)
    assert started and abs(started[0] - onset) < 0.15, "reported start must match the device"


def test_clear_silences_the_output_within_a_block(sink):
    with Recorder() as recorder:
        sink.play(tone(5.0, sink.sample_rate))
        onset = recorder.wait_for_sound(threshold=0.1)
        recorder.wait_until(onset + 0.5)
        import time

        cleared_at = time.monotonic()
        sink.clear()
        recording = recorder.wait_until(cleared_at + 1.0)
    last = last_sound(recording, onset, cleared_at + 1.0, threshold=0.1)
    assert last is not None and last - cleared_at < 0.1, last - cleared_at
    assert sink.wait_idle(0.1)
