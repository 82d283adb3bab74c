"""The desktop window driven by the real engine.

The slow tests run a real ``Assistant`` on the default models (loaded once per module):
a spoken question is fed from a file in real time while the push-to-talk button is held,
and the window must show what was heard, the reply as it streams, and the reply's audio
must reach the sink. The others check the window's own wiring (keys, Stop, hands-free,
errors from worker threads) against a recording stand-in for the assistant.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QLabel

from assistant.audio.sinks import FileSink
from assistant.audio.sources import FileSource, MicrophoneSource
from assistant.config import AssistantConfig
from assistant.echo.setup import EchoSetup
from assistant.errors import ModelError
from assistant.events import DeviceRestored, ErrorOccurred, Event, State, StateChanged
from assistant.pipeline import Assistant, Engines, load_engines
from assistant.pipeline.barge_in import WordsFirst
from ui.app import AppController, apply_style
from ui.main_window import WINDOW_TITLE, MainWindow

QUESTION = "What is the capital of France?"
TURN_TIMEOUT_MS = 90_000  # ASR + LLM + TTS on two CPU cores, with room to spare


def ptt_config() -> AssistantConfig:
    config = AssistantConfig()
    config.vad.mode = "push-to-talk"
    return config


@pytest.fixture(scope="module")
def engines() -> Engines:
    return load_engines(ptt_config())


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    subprocess.run(["espeak-ng", "-w", str(path), QUESTION], check=True, capture_output=True)
    return path


@pytest.fixture
def window(qtbot, qapp: QApplication) -> MainWindow:
    apply_style(qapp)  # the real look, and a check that the style sheet loads
    win = MainWindow(ptt_config())
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


class RecordingAssistant:
    """Stands in for ``Assistant``: records the window's calls, publishes from a thread."""

    def __init__(self) -> None:
        self.config = ptt_config()
        self.echo = EchoSetup(WordsFirst(), "echo cancellation on (WebRTC AEC3)")
        self.calls: list[tuple] = []
        self._handlers: list[Callable[[Event], None]] = []

    def subscribe(self, handler: Callable[[Event], None]) -> None:
        self._handlers.append(handler)

    def push_to_talk(self, down: bool) -> None:
        self.calls.append(("push_to_talk", down))

    def ask(self, text: str) -> int:
        self.calls.append(("ask", text))
        return 1

    def stop_speaking(self) -> None:
        self.calls.append(("stop_speaking",))

    def set_mode(self, mode: str) -> None:
        self.calls.append(("set_mode", mode))

    def publish_from_worker(self, event: Event) -> None:
        """Deliver ``event`` the way the pipeline does: from a non-GUI thread."""
        worker = threading.Thread(target=lambda: [h(event) for h in self._handlers])
        worker.start()
        worker.join()


@pytest.fixture
def recorder(window: MainWindow) -> Iterator[RecordingAssistant]:
    fake = RecordingAssistant()
    window.attach(fake)
    yield fake
    window.detach()


def test_the_status_line_says_how_it_keeps_from_hearing_itself(window, recorder) -> None:
    label = window.status.findChild(QLabel, "echoText")
    assert window.status.echo_text() == "Echo cancellation on"
    assert label.toolTip() == "echo cancellation on (WebRTC AEC3)"
    recorder.echo = EchoSetup(WordsFirst(), "half duplex: not listening while it speaks")
    window.attach(recorder)
    assert window.status.echo_text() == "Half duplex"


@pytest.mark.slow
def test_push_to_talk_turn_is_shown_and_spoken(
    qtbot, window: MainWindow, engines: Engines, question_wav: Path, tmp_path: Path
) -> None:
    engines.chat.conversation.clear()  # the models are shared across this module
    source = FileSource(question_wav, realtime=True)
    sink = FileSink(engines.tts.sample_rate)
    assistant = Assistant(ptt_config(), engines, source, sink)
    bridge = window.attach(assistant)
    shown_while_streaming: list[str] = []  # the reply bubble after each token
    bridge.reply_token.connect(
        lambda turn, _text: shown_while_streaming.append(window.conversation.reply_text(turn))
    )
    states: list[State] = []
    bridge.state_changed.connect(states.append)
    stop_offered: list[tuple[State, bool]] = []  # connected after the window's own slot
    bridge.state_changed.connect(lambda s: stop_offered.append((s, window.stop_button.isEnabled())))
    try:
        assistant.start()
        qtbot.mousePress(window.talk_button, Qt.MouseButton.LeftButton)
        assert window.talk_button.held
        # While held, the question shows as a greyed placeholder.
        qtbot.waitUntil(lambda: window.conversation.is_partial(1), timeout=5_000)
        qtbot.waitUntil(source.finished.is_set, timeout=15_000)
        qtbot.mouseRelease(window.talk_button, Qt.MouseButton.LeftButton)
        assert not window.talk_button.held

        def turn_shown() -> None:
            messages = window.conversation.messages()
            seen = f"shown: {messages}, states: {states}"
            assert [role for role, _ in messages] == ["user", "assistant"], seen
            assert re.search(r"capital|france", messages[0][1], re.IGNORECASE), seen
            assert messages[1][1].strip(), seen
            assert window.conversation.reply_finished(1), seen
            assert sink.audio.size > 0, seen
            assert window.status.state_text() == "Listening", seen

        qtbot.waitUntil(turn_shown, timeout=TURN_TIMEOUT_MS)
    finally:
        window.detach()
        assert assistant.shutdown() == []

    assert not window.conversation.is_partial(1)
    reply = window.conversation.reply_text(1)
    assert reply
    # The reply grew token by token, each step a prefix of the final text.
    assert len(shown_while_streaming) >= 2
    assert all(reply.startswith(step.strip()) for step in shown_while_streaming)
    assert len(shown_while_streaming[0]) < len(reply)
    assert sink.audio.size / sink.sample_rate > 0.3  # a spoken sentence, not a click
    assert sink.audio.size > engines.tts.sample_rate // 10  # the reply was played
    for state in (State.HEARING, State.THINKING, State.SPEAKING, State.LISTENING):
        assert state in states
    assert (State.SPEAKING, True) in stop_offered
    assert stop_offered[-1] == (State.LISTENING, False)
    assert re.fullmatch(r"Voice-to-voice \d+\.\d\d s", window.status.latency_text())
    assert window.isVisible()


@pytest.mark.slow
def test_missing_microphone_is_shown_and_typed_questions_still_work(
    qtbot, window: MainWindow, engines: Engines, tmp_path: Path
) -> None:
    engines.chat.conversation.clear()

    def load(config: AssistantConfig, progress: Callable[[str], None]) -> Engines:
        progress("loading speech recognition")
        return engines

    controller = AppController(
        window,
        ptt_config(),
        source_factory=lambda config: MicrophoneSource("no-such-microphone"),
        sink_factory=lambda config: FileSink(engines.tts.sample_rate),
        load=load,
    )
    try:
        controller.start()
        assert window.status.state_text() == "Loading…"
        assert not window.talk_button.isEnabled()
        qtbot.waitUntil(lambda: controller.assistant is not None, timeout=10_000)
        qtbot.waitUntil(window.error_banner.isVisible, timeout=5_000)
        assert "microphone" in window.error_banner.text().lower()
        assert window.error_banner.history[0][0] == "audio-in"
        assert window.isVisible()
        assert window.talk_button.isEnabled()

        qtbot.keyClicks(window.question_edit, QUESTION)
        qtbot.keyClick(window.question_edit, Qt.Key.Key_Return)
        assert window.question_edit.text() == ""

        def answered() -> None:
            messages = window.conversation.messages()
            assert len(messages) == 2
            assert messages[0] == ("user", QUESTION)
            assert messages[1][0] == "assistant" and messages[1][1].strip()
            assert window.conversation.reply_finished(1)

        qtbot.waitUntil(answered, timeout=TURN_TIMEOUT_MS)
    finally:
        assert controller.shutdown() == []
    assert window.isVisible()


def test_model_load_failure_is_shown_in_the_open_window(qtbot, window: MainWindow) -> None:
    def load(config: AssistantConfig, progress: Callable[[str], None]) -> Engines:
        progress("loading the language model")
        raise ModelError("the LLM in /nowhere has no chat template; use an instruct model")

    controller = AppController(window, ptt_config(), load=load)
    controller.start()
    qtbot.waitUntil(window.error_banner.isVisible, timeout=5_000)
    assert window.error_banner.text() == (
        "Loading the models: the LLM in /nowhere has no chat template; use an instruct model"
    )
    assert window.status.state_text() == "Stopped"
    assert not window.talk_button.isEnabled()
    assert window.isVisible()
    assert controller.shutdown() == []


def test_closing_while_loading_waits_for_the_loader_and_drops_its_result(
    qtbot, window: MainWindow
) -> None:
    release = threading.Event()
    built: list[str] = []

    def load(config: AssistantConfig, progress: Callable[[str], None]) -> Engines:
        release.wait()
        return Engines(recognizer=None, chat=None, tts=None)  # never used: dropped

    def never(config: AssistantConfig):
        built.append("a device was opened after closing")

    controller = AppController(window, ptt_config(), never, never, load=load)
    controller.start()
    assert window.status.state_text() == "Loading…"
    release.set()
    assert controller.shutdown() == []  # joined the loader thread
    QApplication.processEvents()  # deliver a result that may already be queued
    assert controller.assistant is None
    assert built == []


def test_worker_error_is_shown_without_closing_the_window(
    qtbot, window: MainWindow, recorder: RecordingAssistant
) -> None:
    assert window.windowTitle() == WINDOW_TITLE
    assert not window.error_banner.isVisible()
    recorder.publish_from_worker(ErrorOccurred(3, "llm", "RuntimeError: out of memory"))
    qtbot.waitUntil(window.error_banner.isVisible, timeout=5_000)
    assert window.error_banner.text() == "Language model: RuntimeError: out of memory"
    assert window.isVisible()
    assert window.talk_button.isEnabled()  # not fatal: the app keeps running

    recorder.publish_from_worker(StateChanged(3, State.LISTENING))
    qtbot.waitUntil(lambda: window.status.state_text() == "Listening", timeout=5_000)
    assert window.error_banner.isVisible()  # stays until dismissed
    window.error_banner.findChild(type(window.stop_button), "dismissButton").click()
    assert not window.error_banner.isVisible()


def test_space_key_holds_to_talk_and_ignores_auto_repeat(
    qtbot, window: MainWindow, recorder: RecordingAssistant
) -> None:
    window.conversation.setFocus()
    qtbot.keyPress(window.conversation, Qt.Key.Key_Space)
    assert window.talk_button.held
    for kind in (QEvent.Type.KeyRelease, QEvent.Type.KeyPress):  # what holding a key sends
        repeat = QKeyEvent(kind, Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier, " ", True)
        QApplication.sendEvent(window.conversation, repeat)
    assert window.talk_button.held
    qtbot.keyRelease(window.conversation, Qt.Key.Key_Space)
    assert not window.talk_button.held
    assert recorder.calls == [("push_to_talk", True), ("push_to_talk", False)]

    # In the text box, Space types a space.
    window.question_edit.setFocus()
    qtbot.keyClicks(window.question_edit, "a b")
    assert window.question_edit.text() == "a b"
    assert recorder.calls == [("push_to_talk", True), ("push_to_talk", False)]


def test_mouse_hold_survives_leaving_the_button(
    qtbot, window: MainWindow, recorder: RecordingAssistant
) -> None:
    button = window.talk_button
    qtbot.mousePress(button, Qt.MouseButton.LeftButton)
    qtbot.mouseMove(button, button.rect().bottomRight() + button.rect().bottomRight())
    assert button.held
    qtbot.mouseRelease(button, Qt.MouseButton.LeftButton)
    assert recorder.calls == [("push_to_talk", True), ("push_to_talk", False)]


def test_stop_is_offered_while_busy_and_stops(
    qtbot, window: MainWindow, recorder: RecordingAssistant
) -> None:
    assert not window.stop_button.isEnabled()
    recorder.publish_from_worker(StateChanged(1, State.SPEAKING))
    qtbot.waitUntil(window.stop_button.isEnabled, timeout=5_000)
    assert window.status.state_text() == "Speaking"
    qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    assert recorder.calls == [("stop_speaking",)]


def test_hands_free_toggle_switches_the_listening_mode(
    qtbot, window: MainWindow, recorder: RecordingAssistant
) -> None:
    assert not window.hands_free.isChecked()
    window.hands_free.click()
    window.hands_free.click()
    assert recorder.calls == [("set_mode", "hands-free"), ("set_mode", "push-to-talk")]


def test_restored_microphone_clears_its_error(
    qtbot, window: MainWindow, recorder: RecordingAssistant
) -> None:
    recorder.publish_from_worker(StateChanged(0, State.LISTENING))
    qtbot.waitUntil(lambda: window.status.state_text() == "Listening")
    echo = window.status.echo_text()
    recorder.publish_from_worker(ErrorOccurred(0, "audio-in", "the microphone stopped"))
    recorder.publish_from_worker(ErrorOccurred(0, "audio-out", "no speaker is open"))
    qtbot.waitUntil(lambda: "no speaker" in window.error_banner.text())
    # the status line does not claim to listen, nor to cancel an echo there is none of
    assert window.status.state_text() == "Ready"
    assert window.status.detail_text() == "no microphone: type a question"
    assert window.conversation.hint().startswith("No microphone")
    assert window.status.echo_text() == "No speaker"
    recorder.publish_from_worker(DeviceRestored(0, "audio-in"))
    qtbot.waitUntil(lambda: "microphone" not in window.error_banner.text())
    assert "no speaker is open" in window.error_banner.text()
    assert window.error_banner.isVisibleTo(window)
    assert window.status.state_text() == "Listening"
    assert window.status.detail_text() == ""
    assert not window.conversation.hint().startswith("No microphone")
    recorder.publish_from_worker(DeviceRestored(0, "audio-out"))
    qtbot.waitUntil(lambda: window.status.echo_text() == echo)
