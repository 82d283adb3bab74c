"""The fault matrix, live rows: signals to ``voice-assistant listen`` while it loads, idles
and speaks (on the test PulseAudio server, as the live tests start it), and twenty rapid
barge-ins on the pipeline with the fakes of tests/fake_engines.py. The other rows, run
through the command line, are in tests/test_fault_matrix.py.

Nothing here sleeps to synchronise: every wait is on an event, a file or a line of output,
with a deadline.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from audio_env import Recorder, play_into_mic, speak
from fake_engines import FakeChat, ScriptedMicrophone, energy_vad, fake_engines, silence, tone
from live_helpers import EventLog, LineReader, Stream, start_listen, wait_for_file

from assistant.audio.sinks import FileSink
from assistant.config import AssistantConfig
from assistant.events import (
    AudioFinished,
    AudioStarted,
    ErrorOccurred,
    FinalTranscript,
    ReplyFinished,
    TurnCancelled,
)
from assistant.pipeline import Assistant

RATE = 16000

# ---------------------------------------------------------------- signals to `listen`

LISTEN_ARGS = ["--allow-second-instance"]  # the lock is tested in tests/test_instance_lock.py
EXIT_BOUND_S = 15.0
LOAD_BOUND_S = 180.0  # models loaded from the cache on a busy 2-core machine
TURN_S = 90.0


@pytest.fixture(scope="module")
def spoken_question(tmp_path_factory) -> Path:
    return speak("What is the capital of France?", tmp_path_factory.mktemp("ask") / "q.wav")


# (stage, the exit status): interrupted while loading, it never ran (130); once listening,
# a signal is how one quits ("listening (Ctrl-C to quit)"), and that is a success (0).
SIGNAL_ROWS = [
    pytest.param(
        stage,
        sig,
        status,
        id=f"{stage}-{sig.name}",
    )
    for stage, status in (("loading", 130), ("idle", 0), ("speaking", 0))
    for sig in (signal.SIGINT, signal.SIGTERM)
]


@pytest.mark.audio
@pytest.mark.slow
@pytest.mark.parametrize("stage, sig, status", SIGNAL_ROWS)
def test_a_signal_ends_listen_promptly_and_cleanly(
    pulse, tmp_path, spoken_question, stage, sig, status
):
    ready = tmp_path / "listening"
    proc = start_listen(pulse, ready, *LISTEN_ARGS)
    out, err = Stream(proc.stdout), LineReader(proc.stderr)
    recorder = None
    try:
        if stage == "loading":
            loading = err.wait_for(lambda line: line.startswith("[loading "), LOAD_BOUND_S)
            assert loading, f"no progress line (exit {proc.poll()}):\n{err.text()}"
            assert not ready.exists()
        else:
            assert wait_for_file(ready, proc, LOAD_BOUND_S), (
                f"never listened (exit {proc.poll()}):\n{err.text()}"
            )
        if stage == "speaking":
            recorder = Recorder("app_out.monitor").start()
            asked = time.monotonic()
            play_into_mic(spoken_question)
            assert out.wait_for(r"assistant: \S", TURN_S), f"no reply:\n{out.text()}"
            recorder.wait_for_sound(since=asked, timeout=TURN_S)  # the reply is playing
        assert proc.poll() is None, f"exited on its own ({proc.returncode}):\n{err.text()}"
        sent = time.monotonic()
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {EXIT_BOUND_S} s after {sig.name}:\n{err.text()}")
        took = time.monotonic() - sent
    finally:
        if recorder is not None:
            recorder.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        out.join()
        err.join()
    print(f"\n{stage}, {sig.name}: exit {code} after {took:.2f} s")
    stderr = err.text()
    assert "Traceback" not in stderr, stderr
    assert code == status, f"exit {code}, stderr:\n{stderr}"
    assert not [line for line in err.lines if "error" in line.lower()], stderr
    assert not ready.exists(), "the ready file was left behind"
    if stage == "speaking":
        assert re.search(r"^you: .*capital", out.text(), re.I | re.M), out.text()


# ---------------------------------------------------------------- rapid barge-ins

WAIT = 5.0  # each step takes milliseconds; a step past this is a deadlock


def test_twenty_rapid_barge_ins_leave_the_last_question_answered():
    """Twenty interruptions of a reply that is playing, by typed questions, Stop and new
    speech in turn: each cancels the reply at once, the last question is answered in
    full, and every thread shuts down."""
    chat = FakeChat(hold_after=4)  # every reply holds mid-stream, its first phrase played
    engines = fake_engines(chat)
    mic = ScriptedMicrophone()
    log = EventLog()
    assistant = Assistant(
        AssistantConfig(), engines, mic, FileSink(sample_rate=RATE), vad=energy_vad
    )
    assistant.subscribe(log)

    def speaking(turn: int) -> None:
        log.wait_for(AudioStarted, lambda e: e.turn == turn, timeout=WAIT)

    interrupted: list[tuple[int, str]] = []
    assistant.start()
    try:
        turn = assistant.ask("Question 0?")
        for i in range(1, 21):
            speaking(turn)
            kind = "ask" if i == 20 else ("ask", "stop", "speech")[i % 3]
            mark = log.mark()
            if kind == "ask":
                new = assistant.ask("Last question?" if i == 20 else f"Question {i}?")
            elif kind == "stop":
                assistant.stop_speaking()
                log.wait_for(TurnCancelled, lambda e, t=turn: e.turn == t, after=mark)
                new = assistant.ask(f"Question {i}?")
            else:
                mic.say(tone(0.5), silence(0.8))  # "What is?" over the reply
                new = log.wait_for(FinalTranscript, lambda e, t=turn: e.turn > t, after=mark).turn
            interrupted.append((turn, "stop" if kind == "stop" else "barge-in"))
            turn = new
        speaking(turn)
        chat.release.set()  # the last reply may now finish
        done = log.wait_for(AudioFinished, lambda e: e.turn == turn, timeout=WAIT)
        reply = log.wait_for(ReplyFinished, lambda e: e.turn == turn, timeout=WAIT)
    finally:
        left = assistant.shutdown(timeout=WAIT)
    assert left == [], f"threads left running: {left}"
    assert not log.of(ErrorOccurred), log.describe()
    assert len(interrupted) == 20
    for old, reason in interrupted:
        assert [e.reason for e in log.of(TurnCancelled, old)] == [reason], log.describe()
        assert [e.interrupted for e in log.of(AudioFinished, old)] == [True], log.describe()
    assert not done.interrupted and not reply.cancelled, (done, reply)
    assert reply.text == chat.script
    assert chat.questions[-1] == "Last question?"
    assert log.of(TurnCancelled, turn) == []
    assert chat.conversation.turns[-2:] == [
        {"role": "user", "content": "Last question?"},
        {"role": "assistant", "content": chat.script},
    ]
