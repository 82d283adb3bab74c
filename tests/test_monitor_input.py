"""The interpreter's "system audio" input (assistant/audio/monitor.py): what the computer
plays, recorded from the default sink's monitor, on the test PulseAudio server (app_out is its
default sink). A chirp is played into app_out with paplay; the harness Recorder (parec at
10 ms) is the reference time line the monitor source's blocks are measured against."""

from __future__ import annotations

import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import monitor
from assistant.audio.monitor import MonitorSource, default_monitor, input_source
from assistant.audio.sources import MicrophoneSource
from assistant.errors import AudioDeviceError

pytestmark = pytest.mark.audio

RATE = 16000
LOUD = 0.01


def chirp_wav(path: Path, seconds: float = 0.5, lead: float = 0.2) -> tuple[Path, np.ndarray]:
    """A 300-3000 Hz sweep after ``lead`` s of silence, as a 16 kHz WAV; returns the sweep."""
    t = np.arange(int(seconds * RATE)) / RATE
    sweep = 0.5 * np.sin(2 * np.pi * (300 * t + (3000 - 300) / (2 * seconds) * t**2))
    sweep *= np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)  # 10 ms fades: no clicks
    audio = np.concatenate([np.zeros(int(lead * RATE)), sweep, np.zeros(int(0.1 * RATE))])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((audio * 32767).astype("<i2").tobytes())
    return path, sweep.astype(np.float32)


def read_until(source: MonitorSource, done, timeout: float = 10.0, got=None) -> list:
    """Blocks from ``source`` until ``done(blocks)`` holds; fails after ``timeout`` s. ``got``
    collects the time each block was handed over."""
    blocks = []
    deadline = time.monotonic() + timeout
    while not done(blocks):
        assert time.monotonic() < deadline, f"gave up after {len(blocks)} blocks"
        block = source.read(timeout=0.2)
        if block is not None:
            blocks.append(block)
            if got is not None:
                got.append(time.monotonic())
    return blocks


def first_loud(blocks) -> tuple[int, int] | None:
    """(block index, sample index within it) of the first sample above LOUD."""
    for i, block in enumerate(blocks):
        hits = np.flatnonzero(np.abs(block.samples) > LOUD)
        if hits.size:
            return i, int(hits[0])
    return None


def test_the_monitor_delivers_what_the_default_sink_plays(pulse, tmp_path):
    wav, sweep = chirp_wav(tmp_path / "chirp.wav")
    assert default_monitor() == "app_out.monitor"
    source = MonitorSource(sample_rate=RATE, block_ms=32)
    with pulse.Recorder() as reference:
        source.start()
        try:
            assert source.source_name == "app_out.monitor"
            played_at = time.monotonic()
            player = subprocess.Popen(["paplay", str(wav)], stderr=subprocess.PIPE)
            true_onset = reference.wait_for_sound(LOUD, since=played_at)

            def heard_it_all(blocks) -> bool:
                found = first_loud(blocks)
                return found is not None and (len(blocks) - found[0]) * 512 > 1.3 * sweep.size

            handed = []
            blocks = read_until(source, heard_it_all, got=handed)
        finally:
            source.close()
        assert player.wait(10) == 0, player.stderr.read()
    assert all(b.samples.dtype == np.float32 and b.samples.size == 512 for b in blocks)
    stamps = [b.captured_at for b in blocks]
    assert stamps == sorted(stamps)
    recorded = np.concatenate([b.samples for b in blocks])
    # the sweep is in there, undistorted: aligned, it correlates almost perfectly
    lag = int(np.argmax(np.correlate(recorded, sweep, "valid")))
    aligned = recorded[lag : lag + sweep.size]
    assert np.corrcoef(aligned, sweep)[0, 1] > 0.95
    assert 0.7 < np.std(aligned) / np.std(sweep) < 1.3  # at the level it was played
    # how late it comes: the block holding the first loud sample, against the reference
    index, offset = first_loud(blocks)
    block = blocks[index]
    stamped = block.captured_at - (block.samples.size - 1 - offset) / RATE
    delay = handed[index] - true_onset  # includes waiting for the rest of its 32 ms block
    print(f"\nmonitor: sound handed over {delay * 1000:.0f} ms after it played; its stamp is "
          f"{(stamped - true_onset) * 1000:+.0f} ms off")  # fmt: skip
    assert -0.005 < stamped - true_onset < 0.1  # a stamp is never early, and close
    assert delay < 0.2, f"{delay * 1000:.0f} ms"


def test_input_setting_names_the_source():
    mic = input_source("mic", 16000, 32)
    assert isinstance(mic, MicrophoneSource) and mic.device is None and mic.sample_rate == 16000
    source = input_source("monitor", 24000, 20)
    assert isinstance(source, MonitorSource) and source.device is None
    assert source.sample_rate == 24000 and source._block == 480
    assert input_source(" 3 ", 16000, 32).device == 3
    named = input_source("BlackHole 2ch", 16000, 32)
    assert isinstance(named, MicrophoneSource) and named.device == "BlackHole 2ch"


def one_line_error(start) -> str:
    with pytest.raises(AudioDeviceError) as caught:
        start()
    message = str(caught.value)
    assert "\n" not in message and message
    return message


def test_no_sound_server_is_one_line_saying_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/nobody-home")
    started = time.monotonic()
    message = one_line_error(MonitorSource().start)
    assert "PulseAudio" in message and "PipeWire" in message and "interpret.input" in message
    assert time.monotonic() - started < 5


def test_an_old_pactl_without_get_default_sink(monkeypatch, tmp_path):
    """pactl before 15 has no get-default-sink; its `pactl info` names the sink."""
    fake = tmp_path / "pactl"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = info ]; then echo "Server Name: pulseaudio"; echo "Default Sink: speakers"\n'
        'else echo "No valid command specified." >&2; exit 1; fi\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert default_monitor() == "speakers.monitor"


def test_no_pactl_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    message = one_line_error(MonitorSource().start)
    assert "pactl not found" in message and "pulseaudio-utils" in message


@pytest.mark.parametrize(
    ("platform", "hint"), [("win32", "WASAPI loopback"), ("darwin", "BlackHole")]
)
def test_other_systems_are_told_to_pick_the_loopback_device(monkeypatch, platform, hint):
    monkeypatch.setattr(monitor.sys, "platform", platform)
    message = one_line_error(MonitorSource().start)
    assert hint in message and "interpret.input" in message


def test_a_source_that_does_not_exist(pulse):
    message = one_line_error(MonitorSource(device="no_such_sink.monitor").start)
    assert "no_such_sink.monitor" in message


def test_the_recorder_dying_mid_read_is_a_device_error_and_it_reconnects(pulse):
    source = MonitorSource(sample_rate=RATE, block_ms=32)
    source.start()
    try:
        assert read_until(source, lambda blocks: len(blocks) >= 3)
        source._proc.kill()  # what a crashed or restarted sound server looks like to it

        def lost() -> bool:
            try:
                source.read(timeout=0.2)
            except AudioDeviceError as exc:
                assert "\n" not in str(exc) and "app_out.monitor" in str(exc)
                return True
            return False

        deadline = time.monotonic() + 5
        while not lost():
            assert time.monotonic() < deadline, "the lost recording was never reported"
        source.close()  # as the runner does, then start again
        source.start()
        assert read_until(source, lambda blocks: len(blocks) >= 3)
    finally:
        source.close()
