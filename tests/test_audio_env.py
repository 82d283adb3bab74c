"""Proves the real-audio harness: sounddevice's default devices are the test server's null sinks."""

from __future__ import annotations

import queue
import time

import numpy as np
import pytest
from audio_env import Recorder, play_into_mic, read_wav, speak

pytestmark = pytest.mark.audio


def frame_rms(x: np.ndarray, rate: int, ms: int = 10) -> np.ndarray:
    n = rate * ms // 1000
    frames = x[: x.size // n * n].reshape(-1, n)
    return np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))


def best_match(long: np.ndarray, short: np.ndarray) -> tuple[int, float]:
    """Offset of ``short`` in ``long`` and the normalised correlation there (FFT-based)."""
    nfft = 1 << (long.size + short.size).bit_length()
    corr = np.fft.irfft(np.fft.rfft(long, nfft) * np.conj(np.fft.rfft(short, nfft)), nfft)
    lag = int(np.argmax(corr[: long.size - short.size + 1]))
    seg = long[lag : lag + short.size]
    return lag, float(corr[lag] / (np.linalg.norm(seg) * np.linalg.norm(short) + 1e-12))


def test_tone_on_default_output_is_recorded_on_app_out(pulse):
    import sounddevice as sd

    rate, seconds, freq = 48000, 0.5, 440.0
    tone = 0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)
    with Recorder("app_out.monitor") as rec:
        t_play = time.monotonic()
        sd.play(tone.astype(np.float32), rate, latency="low")
        sd.wait()
        onset = rec.wait_for_sound(threshold=0.1)
        recording = rec.wait_until(onset + seconds + 0.3)

    assert t_play - 0.05 < onset < t_play + 1.0, f"onset {onset - t_play:.3f} s after play()"
    x = recording.samples[recording.index_of(onset) :][: int(recording.rate * (seconds + 0.3))]
    loud_s = np.count_nonzero(frame_rms(x, recording.rate) > 0.1) * 0.01
    assert abs(loud_s - seconds) <= 0.05, f"tone lasted {loud_s:.2f} s on app_out, not {seconds}"
    spectrum = np.abs(np.fft.rfft(x[: recording.rate // 4]))
    peak_hz = np.argmax(spectrum) * recording.rate / (recording.rate // 4)
    assert abs(peak_hz - freq) <= 8, peak_hz
    assert 0.3 < np.sqrt(np.mean(x[: recording.rate // 4] ** 2)) < 0.4  # 0.5 / sqrt(2)


def test_speech_into_mic_reaches_default_input(pulse, tmp_path):
    import sounddevice as sd

    wav = speak("testing the virtual microphone", tmp_path / "query.wav")
    ref, rate = read_wav(wav)
    assert rate == 16000 and ref.size > rate // 2

    blocks: queue.Queue[np.ndarray] = queue.Queue()
    with sd.InputStream(
        samplerate=rate,
        channels=1,
        dtype="float32",
        latency="low",
        callback=lambda data, frames, t, status: blocks.put(data[:, 0].copy()),
    ):
        got = [blocks.get(timeout=5)]  # the stream is live before anything is played
        play_into_mic(wav)
        # Read on until the speech has come in and been followed by 0.5 s of silence.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got.append(blocks.get(timeout=5))
            rms = frame_rms(np.concatenate(got), rate)
            loud = np.flatnonzero(rms > 0.01)
            if loud.size and rms.size - loud[-1] > 50:
                break
    x = np.concatenate(got)

    lag, corr = best_match(x, ref)
    assert corr > 0.9, f"captured speech correlates {corr:.2f} with the WAV"
    rms = frame_rms(x, rate)
    loud = np.flatnonzero(rms > 0.01)
    ref_loud = np.flatnonzero(frame_rms(ref, rate) > 0.01)
    assert abs((loud[-1] - loud[0]) - (ref_loud[-1] - ref_loud[0])) <= 3  # within 30 ms


def test_speak_engines_write_16k_mono(tmp_path):
    for engine in ("espeak-ng", "flite"):
        x, rate = read_wav(speak("hello there", tmp_path / f"{engine}.wav", engine=engine))
        assert rate == 16000 and x.size > rate // 4 and np.abs(x).max() > 0.1, engine
