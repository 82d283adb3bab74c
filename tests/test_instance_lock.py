"""Starting a live session: one per user, on a microphone that is there, in a terminal
whose reply lines end. No model is loaded here (fake engines where a pipeline runs).

The lock's holder is a real second process that takes the lock through
``assistant.instance_lock`` and says so on stdout; nothing here sleeps to wait for it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fake_engines import energy_vad, fake_engines

from assistant import cli, instance_lock
from assistant.audio.blocks import AudioBlock
from assistant.audio.sinks import FileSink
from assistant.commands.listen import Printer
from assistant.config import AssistantConfig
from assistant.errors import AudioDeviceError
from assistant.events import (
    DeviceRestored,
    ErrorOccurred,
    Event,
    FinalTranscript,
    NothingHeard,
    Ready,
    ReplyFinished,
    ReplyToken,
    TurnCancelled,
)
from assistant.instance_lock import InstanceLock, SecondInstanceError
from assistant.pipeline import Assistant, runner

REPO = Path(__file__).resolve().parent.parent
REFUSAL_END = (
    "is using the microphone; quit it first, or pass --allow-second-instance to run anyway"
)

HOLDER = """
import sys
from assistant.instance_lock import InstanceLock

lock = InstanceLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""


@pytest.fixture
def lock_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private lock directory for this test, here and in the processes it starts."""
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("VOICE_ASSISTANT_CACHE_DIR", str(tmp_path / "cache"))
    assert instance_lock.lock_dir() == run / "voice-assistant"
    return dict(os.environ)


@contextlib.contextmanager
def holder(env: dict[str, str], command: str = "listen") -> Iterator[subprocess.Popen]:
    """A second process holding the lock until the block ends (or it is killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, command],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # returns "" at once if it died instead
        assert line == "held\n", proc.stderr.read()
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            assert proc.stdout.readline() == "released\n"
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            stream.close()


def refusal(pid: int | None, command: str = "listen") -> str:
    who = f" ({command}, pid {pid})" if pid else ""
    return f"voice-assistant: error: another voice-assistant{who} {REFUSAL_END}"


def a_finished_process_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    assert not instance_lock.pid_alive(proc.pid)
    return proc.pid


# -- one live session per user -----------------------------------------------------------


def test_a_second_listen_names_the_holder_and_exits_2_without_loading(lock_env, capsys):
    with holder(lock_env) as proc:
        status = cli.main(["listen"])  # a model loaded here would fail this test
    assert status == 2
    captured = capsys.readouterr()
    assert captured.err == refusal(proc.pid) + "\n"
    assert captured.out == ""


def test_the_command_line_refuses_a_second_listen_in_one_line_at_once(lock_env, tmp_path):
    ready = tmp_path / "listening"
    with holder(lock_env, "window") as proc:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "assistant", "listen", "--ready-file", str(ready)],
            cwd=REPO,
            env=lock_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        took = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert result.stderr == refusal(proc.pid, "window") + "\n"  # no "[loading …]" before it
    assert result.stdout == "" and not ready.exists()
    assert took < 15, f"the refusal took {took:.1f} s"  # the models take far longer


@pytest.mark.parametrize("where", ["before", "after"])
def test_allow_second_instance_gets_past_the_lock(lock_env, pulse, tmp_path, capsys, where):
    missing = tmp_path / "no-such-whisper"
    flag = ["--allow-second-instance"]
    argv = ["listen", "--asr-model", str(missing)]
    argv = flag + argv if where == "before" else argv + flag
    with holder(lock_env):
        status = cli.main(argv)
    assert status == 2
    # Past the lock and the microphone check, it failed on the model it was pointed at.
    assert capsys.readouterr().err.splitlines() == [
        "[loading speech recognition]",
        f"voice-assistant: error: Whisper model folder not found: {missing}",
    ]


def test_a_holder_killed_with_sigkill_never_blocks(lock_env):
    lock = InstanceLock("listen")
    with holder(lock_env) as proc:
        with pytest.raises(SecondInstanceError):
            lock.acquire()
        proc.kill()  # SIGKILL: no chance to remove its description
        proc.wait(10)
    stale = json.loads(lock.holder_path.read_text())
    assert stale["pid"] == proc.pid and stale["command"] == "listen"
    lock.acquire()  # the OS released the dead holder's lock
    try:
        mine = json.loads(lock.holder_path.read_text())
        assert mine["pid"] == os.getpid() and mine["command"] == "listen"
    finally:
        lock.release()
    assert not lock.holder_path.exists()


def test_a_description_naming_a_dead_process_is_not_believed(lock_env):
    gone = a_finished_process_pid()
    lock = InstanceLock("listen")
    with holder(lock_env):
        lock.holder_path.write_text(json.dumps({"pid": gone, "command": "window", "started": 0}))
        with pytest.raises(SecondInstanceError) as refused:
            lock.acquire()
    assert refused.value.holder is None
    assert str(refused.value) == f"another voice-assistant {REFUSAL_END}"
    assert str(gone) not in str(refused.value)


def test_a_stale_description_without_a_holder_is_replaced(lock_env):
    lock = InstanceLock("window")
    lock.directory.mkdir(parents=True)
    gone = a_finished_process_pid()
    lock.holder_path.write_text(json.dumps({"pid": gone, "command": "listen", "started": 0}))
    with lock:
        assert lock.holder() == instance_lock.Holder(
            os.getpid(), "window", json.loads(lock.holder_path.read_text())["started"]
        )
        with pytest.raises(SecondInstanceError) as refused:
            InstanceLock("listen").acquire()  # a second lock in this very process
        assert str(refused.value) == f"another voice-assistant (window, pid {os.getpid()}) " + (
            REFUSAL_END
        )
    InstanceLock("listen").acquire()  # released with the block


# -- the window -------------------------------------------------------------------------


def test_a_second_window_is_refused_on_stderr_and_in_a_box(lock_env, capsys, monkeypatch):
    from ui import app, launcher

    opened, boxes = [], []
    monkeypatch.setattr(launcher, "open_window", lambda config: opened.append(config) or 0)
    monkeypatch.setattr(launcher, "can_show_dialog", lambda: True)
    monkeypatch.setattr(app, "show_already_running", boxes.append)
    with holder(lock_env) as proc:
        assert launcher.main([]) == 2
    assert opened == []
    line = refusal(proc.pid)
    assert capsys.readouterr().err == line + "\n"
    assert boxes == [line.removeprefix("voice-assistant: error: ")]


def test_the_open_window_holds_the_lock_and_allow_skips_it(lock_env, monkeypatch):
    from ui import launcher

    seen = []

    def open_window(config) -> int:
        with pytest.raises(SecondInstanceError) as refused:
            InstanceLock("listen").acquire()
        seen.append(refused.value.holder)
        return 0

    monkeypatch.setattr(launcher, "open_window", open_window)
    assert launcher.main([]) == 0
    assert [(h.pid, h.command) for h in seen] == [(os.getpid(), "window")]
    with InstanceLock("listen"):  # released when the window closed
        opened = []
        monkeypatch.setattr(launcher, "open_window", lambda config: opened.append(config) or 0)
        assert launcher.main(["--allow-second-instance"]) == 0
    assert len(opened) == 1


def test_the_box_is_a_critical_message_with_the_apps_title(qapp, monkeypatch):
    from ui import app

    shown = []

    class Box:
        @staticmethod
        def critical(parent, title, text):
            shown.append((parent, title, text))

    monkeypatch.setattr(app, "QMessageBox", Box)
    app.show_already_running("another voice-assistant (listen, pid 7) is using the microphone")
    assert shown == [
        (
            None,
            "Voice Assistant is already running",
            "another voice-assistant (listen, pid 7) is using the microphone",
        )
    ]


def test_the_box_is_shown_only_on_a_screen_someone_looks_at(monkeypatch):
    from ui import launcher

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setenv("DISPLAY", ":0")
    assert not launcher.can_show_dialog()  # the tests' platform: a modal box would hang
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert launcher.can_show_dialog()
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.delenv("DISPLAY")
    assert not launcher.can_show_dialog()


# -- a microphone that cannot be opened at start ------------------------------------------


def test_listen_without_its_microphone_exits_2_in_one_line_and_never_gets_ready(pulse, tmp_path):
    ready = tmp_path / "listening"
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "listen", "--input-device", "nosuchmic"]
        + ["--ready-file", str(ready)],
        cwd=REPO,
        env={**os.environ, **pulse.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # not "listening", not "[loading …]"
    assert lines[0].startswith(
        "voice-assistant: error: no usable microphone (device 'nosuchmic'): "
    ), lines
    assert result.stdout == "" and not ready.exists()


class MissingMicrophone:
    sample_rate = 16000

    def __init__(self) -> None:
        self.closed = 0

    def start(self) -> None:
        raise AudioDeviceError("no usable microphone (device 'nosuchmic'): not there")

    def read(self, timeout: float) -> None:
        raise AssertionError("read from a microphone that never opened")

    def close(self) -> None:
        self.closed += 1


def test_a_source_that_fails_to_open_stops_the_start_with_nothing_running():
    events: list[Event] = []
    source = MissingMicrophone()
    config = AssistantConfig()
    assistant = Assistant(config, fake_engines(), source, FileSink(16000), vad=energy_vad)
    assistant.subscribe(events.append)
    before = set(threading.enumerate())
    with pytest.raises(AudioDeviceError, match="nosuchmic"):
        assistant.start()
    assert set(threading.enumerate()) - before == set()  # no thread started
    assert not any(isinstance(e, Ready | ErrorOccurred) for e in events), events
    assert assistant.shutdown(timeout=2) == []  # still safe
    assert source.closed >= 1


class LostOnce:
    """Delivers silence, fails like an unplugged microphone once, then works again."""

    sample_rate = 16000

    def __init__(self) -> None:
        self.starts = 0
        self.reads = 0
        self._closed = threading.Event()

    def start(self) -> None:
        self.starts += 1
        self._closed.clear()

    def read(self, timeout: float):
        self.reads += 1
        if self.reads == 3:
            raise AudioDeviceError("the microphone stopped delivering audio (unplugged?)")
        if self._closed.wait(0.032):
            return None
        return AudioBlock(np.zeros(512, np.float32), time.monotonic())

    def close(self) -> None:
        self._closed.set()


def test_a_microphone_lost_mid_session_is_still_reopened(monkeypatch):
    monkeypatch.setattr(runner, "_RECONNECT_S", 0.05)
    events: list[Event] = []
    restored = threading.Event()

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, DeviceRestored):
            restored.set()

    source = LostOnce()
    config = AssistantConfig()
    assistant = Assistant(config, fake_engines(), source, FileSink(16000), vad=energy_vad)
    assistant.subscribe(on_event)
    assistant.start()
    try:
        assert restored.wait(10), events
    finally:
        assert assistant.shutdown(timeout=5) == []
    errors = [e for e in events if isinstance(e, ErrorOccurred)]
    assert [(e.stage, "unplugged" in e.message) for e in errors] == [("audio-in", True)]
    assert source.starts == 2


def test_the_window_shows_a_microphone_missing_at_start_and_answers_typed_questions(qtbot, qapp):
    from PySide6.QtCore import Qt

    from ui.app import AppController
    from ui.loader import SilentSource
    from ui.main_window import MainWindow

    config = AssistantConfig()
    config.vad.mode = "push-to-talk"
    window = MainWindow(config)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    controller = AppController(
        window,
        config,
        source_factory=lambda config: MissingMicrophone(),
        sink_factory=lambda config: FileSink(16000),
        load=lambda config, progress: fake_engines(),
    )
    try:
        controller.start()
        qtbot.waitUntil(lambda: controller.assistant is not None, timeout=10_000)
        assert window.error_banner.history == [
            ("audio-in", "no usable microphone (device 'nosuchmic'): not there", False)
        ]
        assert isinstance(controller.assistant.runner.source, SilentSource)
        assert window.talk_button.isEnabled()
        qtbot.keyClicks(window.question_edit, "What is the time?")
        qtbot.keyClick(window.question_edit, Qt.Key.Key_Return)

        def answered() -> None:
            assert window.conversation.messages() == [
                ("user", "What is the time?"),
                ("assistant", "It is noon. The sun is high and the sky is clear."),
            ]

        qtbot.waitUntil(answered, timeout=10_000)
    finally:
        assert controller.shutdown() == []


# -- the terminal's reply lines ------------------------------------------------------------


def on_terminal(printer: Printer, *events: Event) -> str:
    """What ``printer`` writes for ``events`` as a terminal shows it: stdout and stderr
    in one stream, in the order written."""
    screen = io.StringIO()
    with contextlib.redirect_stdout(screen), contextlib.redirect_stderr(screen):
        for event in events:
            printer(event)
    return screen.getvalue()


def reply(turn: int, *tokens: str) -> list[Event]:
    return [ReplyToken(turn, token) for token in tokens]


def test_a_barge_in_transcript_ends_the_old_reply_line(capsys):
    printer = Printer(None)
    for event in (
        FinalTranscript(1, "How many days are in a week?", "en"),
        *reply(1, "There are", " 7 days"),
        FinalTranscript(2, "What is two plus two?", "en"),  # before turn 1's end
        *reply(1, " in a week."),  # a late token of the superseded turn
        ReplyFinished(1, "There are 7 days in a week.", cancelled=True),
        *reply(2, "Four."),
        ReplyFinished(2, "Four.", cancelled=False),
    ):
        printer(event)
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "you: How many days are in a week?",
        "assistant: There are 7 days [interrupted]",
        "you: What is two plus two?",
        "assistant: Four.",
    ]
    assert captured.out.endswith("\n") and captured.err == ""


def test_messages_end_the_open_reply_line_first():
    shown = on_terminal(
        Printer(None),
        Ready(0),
        FinalTranscript(1, "Tell me a story.", "en"),
        *reply(1, "Once upon", " a time"),
        TurnCancelled(1, "barge-in"),
        ReplyFinished(1, "Once upon a time", cancelled=True),
        NothingHeard(2, "no words"),
        FinalTranscript(3, "Hello.", "en"),
        *reply(3, "Hi"),
        NothingHeard(4, "too short"),  # a cough: turn 3 was superseded
        ReplyFinished(3, "Hi", cancelled=True),
    )
    assert shown.splitlines() == [
        "listening (Ctrl-C to quit)",
        "you: Tell me a story.",
        "assistant: Once upon a time [interrupted]",
        "(barge-in)",
        "(nothing heard: no words)",
        "you: Hello.",
        "assistant: Hi [interrupted]",
        "(nothing heard: too short)",
    ]


def test_an_error_in_a_running_reply_ends_its_line_and_the_reply_goes_on():
    shown = on_terminal(
        Printer(None),
        FinalTranscript(1, "Tell me a story.", "en"),
        *reply(1, "Once upon"),
        ErrorOccurred(1, "audio-out", "the speaker went away"),
        *reply(1, " a time."),
        ReplyFinished(1, "Once upon a time.", cancelled=False),
        FinalTranscript(2, "Thanks.", "en"),
        ErrorOccurred(2, "llm", "the server hung up"),
        ReplyFinished(2, "", cancelled=False),  # after its line was ended
    )
    assert shown.splitlines() == [
        "you: Tell me a story.",
        "assistant: Once upon",
        "error (audio-out): the speaker went away",
        "assistant: ... a time.",
        "you: Thanks.",
        "assistant: ",
        "error (llm): the server hung up",
    ]
    assert shown.endswith("the server hung up\n")


def test_the_ready_file_is_written_when_listening(tmp_path):
    ready = tmp_path / "listening"
    printer = Printer(ready)
    assert on_terminal(printer, ErrorOccurred(0, "audio-out", "no speaker")) == (
        "error (audio-out): no speaker\n"
    )
    assert not ready.exists()
    assert on_terminal(printer, Ready(0)) == "listening (Ctrl-C to quit)\n"
    assert ready.read_text() == "listening\n"
