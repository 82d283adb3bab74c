"""``voice-assistant listen --push-to-talk space`` in a terminal (a pty), on the virtual devices."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from audio_env import play_into_mic, speak
from live_helpers import LineReader, wait_for_file

pytestmark = [pytest.mark.audio, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent


def test_only_speech_between_key_presses_is_answered(pulse, tmp_path):
    before = speak("Turn on the lights in the garden.", tmp_path / "before.wav")
    question = speak("What is the capital of France?", tmp_path / "question.wav")
    ready = tmp_path / "listening"
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "listen", "--push-to-talk", "space"]
        + ["--ready-file", str(ready)],
        cwd=REPO,
        env={**os.environ, **pulse.env},
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(slave)
    out, err = LineReader(proc.stdout), LineReader(proc.stderr)
    try:
        assert wait_for_file(ready, proc, timeout=180), err.text()
        assert err.wait_for(lambda line: "to talk" in line, 30), err.text()
        play_into_mic(before)  # not held: must be ignored
        os.write(master, b" ")
        assert err.wait_for(lambda line: line == "[recording]", 10), err.text()
        play_into_mic(question)
        os.write(master, b" ")
        assert err.wait_for(lambda line: line == "[sent]", 10), err.text()
        heard = out.wait_for(lambda line: line.startswith("you: "), 90)
        assert heard and re.search(r"capital|france", heard, re.I), out.text()
        assert out.wait_for(lambda line: line.startswith("assistant: ") and len(line) > 12, 90)
        assert not re.search(r"light|garden", out.text(), re.I), out.text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, err.text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
        out.join()
        err.join()
