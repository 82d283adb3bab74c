"""The window's Interpreter mode: captions, the caption overlay, export and the mode switch.

Engines are stood in for by ``FakeInterpreter``, which publishes caption events from a
worker thread the way the pipeline does; the app wiring runs with fake loaders, so no
model is loaded. The overlay keeps its settings in a temporary ini file, never the user's.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QPoint, QPointF, QRect, QSettings, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel

import ui.app
from assistant.audio.sinks import NullSink
from assistant.config import AssistantConfig
from assistant.echo.setup import EchoSetup
from assistant.errors import ModelError
from assistant.events import ErrorOccurred, Event, SourceCaption, TranslatedCaption
from assistant.interpret.record import CaptionRecord, CaptionSegment
from assistant.pipeline.barge_in import WordsFirst
from ui.app import AppController, apply_style
from ui.caption_overlay import CaptionOverlay
from ui.caption_view import CaptionView, join_caption
from ui.interpreter_panel import InterpreterPanel
from ui.loader import SilentSource
from ui.main_window import MainWindow

DESCRIPTION = "Gemma 3 270M (llama.cpp) · espeak-ng Mandarin (last-resort voice)"


def caption(segment: int, confirmed: str, tentative: str = "", language: str = "en", **kw):
    start = kw.pop("start", 2.0 * segment)
    return SourceCaption(0, segment, confirmed, tentative, language, start, start + 1.5, **kw)


def translated(segment: int, source: str, text: str, source_language="en", target="zh"):
    start = 2.0 * segment
    return TranslatedCaption(0, segment, source, text, source_language, target, start, start + 1.5)


class FakeInterpreter:
    """Stands in for ``Interpreter``: records calls, publishes events from a worker thread
    and keeps its ``record`` as the pipeline does."""

    def __init__(self, config=None, engines=None, source=None, sink=None) -> None:
        self.config, self.engines, self.source, self.sink = config, engines, source, sink
        self.record = CaptionRecord()
        self.description = DESCRIPTION
        self.calls: list[tuple] = []
        self.shutdown_threads: list[threading.Thread] = []
        self._handlers: list[Callable[[Event], None]] = []

    def subscribe(self, handler) -> None:
        self._handlers.append(handler)

    def unsubscribe(self, handler) -> None:
        self._handlers.remove(handler)

    def start(self) -> None:
        self.calls.append(("start",))

    def shutdown(self, timeout: float = 10.0) -> list[str]:
        self.calls.append(("shutdown",))
        self.shutdown_threads.append(threading.current_thread())
        return []

    def set_speak(self, on: bool) -> None:
        self.calls.append(("set_speak", on))

    def stop_speaking(self) -> None:
        self.calls.append(("stop_speaking",))

    def publish_from_worker(self, *events: Event) -> None:
        def deliver() -> None:
            for event in events:
                if isinstance(event, SourceCaption) and event.final:
                    self.record.add(
                        CaptionSegment(
                            event.segment, event.start, event.end, event.confirmed, event.language
                        )
                    )
                if isinstance(event, TranslatedCaption):
                    self.record.translated(event.segment, event.text, event.target_language)
                for handler in list(self._handlers):
                    handler(event)

        worker = threading.Thread(target=deliver)
        worker.start()
        worker.join()


class FakeAssistant:
    """Stands in for ``Assistant`` inside ``AppController``."""

    instances: list[FakeAssistant] = []

    def __init__(self, config, engines, source, sink, partial_every_s=0.0) -> None:
        self.config, self.engines, self.source = config, engines, source
        self.echo = EchoSetup(WordsFirst(), "echo cancellation on (WebRTC AEC3)")
        self.calls: list[str] = []
        FakeAssistant.instances.append(self)

    def subscribe(self, handler) -> None:
        pass

    def start(self) -> None:
        self.calls.append("start")

    def shutdown(self, timeout: float = 10.0) -> list[str]:
        self.calls.append("shutdown")
        return []

    def push_to_talk(self, down: bool) -> None: ...

    def ask(self, text: str) -> int:
        return 1

    def stop_speaking(self) -> None: ...

    def set_mode(self, mode: str) -> None: ...


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "window.ini"


@pytest.fixture
def window(qtbot, qapp: QApplication, settings_file: Path) -> MainWindow:
    apply_style(qapp)
    win = MainWindow(
        AssistantConfig(), settings=QSettings(str(settings_file), QSettings.Format.IniFormat)
    )
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.mode_buttons.button(1).click()
    assert win.mode == "interpreter"
    yield win
    win.interpreter.close_overlay()


@pytest.fixture
def fake(window: MainWindow) -> FakeInterpreter:
    interpreter = FakeInterpreter()
    window.interpreter.attach(interpreter)
    yield interpreter
    window.interpreter.detach()


def test_partial_captions_appear_and_update_in_place(qtbot, window, fake) -> None:
    view = window.interpreter.captions
    assert window.interpreter.status.description_text() == DESCRIPTION
    fake.publish_from_worker(caption(0, "", "Hello"))
    qtbot.waitUntil(lambda: view.source_text(0) == "Hello")
    assert view.confirmed_text(0) == "" and view.tentative_text(0) == "Hello"
    fake.publish_from_worker(caption(0, "Hello", "wor"))
    qtbot.waitUntil(lambda: view.source_text(0) == "Hello wor")
    label = view.row_widget(0).findChild(QLabel, "captionSource")
    assert "font-style:italic" in label.text() and label.text().startswith("Hello ")
    fake.publish_from_worker(caption(0, "Hello world.", "", final=True))
    qtbot.waitUntil(lambda: view.source_text(0) == "Hello world.")
    assert "italic" not in label.text()  # nothing tentative is left
    assert view.row_count() == 1  # one row, updated in place


def test_confirmed_text_is_never_rewritten(qtbot, window, fake) -> None:
    view = window.interpreter.captions
    seen: list[str] = []
    bridge = window.interpreter._bridge
    bridge.source_caption.connect(lambda _event: seen.append(view.confirmed_text(0)))
    fake.publish_from_worker(
        caption(0, "We", "meet"),
        caption(0, "We meet", "at nine"),
        caption(0, "We mean", "at noon"),  # a decoder that contradicts itself
        caption(0, "We meet at", "nine"),
        caption(0, "We meet at nine", "", final=True),
    )
    qtbot.waitUntil(lambda: len(seen) == 5)
    assert seen == ["We", "We meet", "We meet", "We meet at", "We meet at nine"]
    assert all(later.startswith(earlier) for earlier, later in zip(seen, seen[1:], strict=False))


def test_translation_shows_under_its_source_and_cjk_gets_no_spaces(qtbot, window, fake) -> None:
    view = window.interpreter.captions
    fake.publish_from_worker(
        caption(0, "你好世界。", "", language="zh", final=True),
        caption(1, "我们明天", "见面", language="zh"),
        translated(0, "你好世界。", "Hello, world.", "zh", "en"),
    )
    qtbot.waitUntil(lambda: view.translation_text(0) == "Hello, world.")
    assert view.source_text(1) == "我们明天见面"  # no space added between CJK parts
    assert view.translation_text(1) == ""
    row = view.row_widget(0)
    source = row.findChild(QLabel, "captionSource")
    translation = row.findChild(QLabel, "captionTranslation")
    qtbot.waitUntil(translation.isVisible)
    assert translation.text() == "Hello, world."
    assert translation.y() > source.y()  # beneath its source
    assert view.row_widget(1).y() > row.y()  # newest at the bottom
    assert join_caption("Hello", "world") == "Hello world"
    assert join_caption("我们", "见面", "zh") == "我们见面"


def test_the_caption_list_stays_bounded_and_follows_unless_scrolled_up(qtbot) -> None:
    view = CaptionView(max_rows=40)
    qtbot.addWidget(view)
    view.resize(500, 300)
    view.show()
    qtbot.waitExposed(view)
    for segment in range(300):
        view.show_source(caption(segment, "", "a partial caption"))
        view.show_source(caption(segment, f"segment {segment} is closed", "", final=True))
        view.show_translation(translated(segment, "x", f"第{segment}段"))
    assert view.row_count() == 40
    assert view.segments() == list(range(260, 300))
    view.show_source(caption(3, "a late update for a dropped row", ""))
    assert 3 not in view.segments()
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    bar.setValue(0)  # the reader scrolls up
    view.show_source(caption(300, "one more", ""))
    QApplication.processEvents()
    assert not view.following and bar.value() == 0


def test_overlay_shows_both_languages(qtbot, window, fake) -> None:
    panel = window.interpreter
    panel.overlay_toggle.click()
    overlay = panel.overlay
    qtbot.waitUntil(overlay.isVisible)
    assert overlay.windowFlags() & Qt.WindowType.WindowStaysOnTopHint
    assert overlay.windowFlags() & Qt.WindowType.FramelessWindowHint
    fake.publish_from_worker(
        caption(0, "Good morning.", "", final=True),
        translated(0, "Good morning.", "早上好。"),
        caption(1, "How are", "you"),
    )
    qtbot.waitUntil(lambda: len(overlay.shown_text()) == 2)
    assert overlay.shown_text() == [("Good morning.", "早上好。"), ("How are you", "")]
    overlay.set_lines(1)
    assert overlay.shown_text() == [("How are you", "")]
    overlay.set_show("translation")
    assert overlay.shown_text() == [("", "早上好。")]
    panel.overlay_toggle.click()
    assert not overlay.isVisible()


def test_overlay_keeps_its_place_font_and_opacity_across_a_restart(
    qtbot, settings_file: Path
) -> None:
    first = CaptionOverlay(QSettings(str(settings_file), QSettings.Format.IniFormat))
    qtbot.addWidget(first)
    first.show()
    qtbot.waitExposed(first)
    first.setGeometry(QRect(40, 60, 520, 150))
    wheel = QWheelEvent(
        QPointF(10, 10), QPointF(first.mapToGlobal(QPoint(10, 10))), QPoint(), QPoint(0, 120),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase,
        False,
    )  # fmt: skip
    QApplication.sendEvent(first, wheel)
    assert first.font_size == 28  # 26, one Ctrl+wheel step up
    menu = first.context_menu()
    opacity = next(a.menu() for a in menu.actions() if a.text() == "Background opacity")
    next(a for a in opacity.actions() if a.text() == "35 %").trigger()
    assert first.opacity == pytest.approx(0.35)
    first.close()

    second = CaptionOverlay(QSettings(str(settings_file), QSettings.Format.IniFormat))
    qtbot.addWidget(second)
    second.show()
    qtbot.waitExposed(second)
    assert second.geometry() == QRect(40, 60, 520, 150)
    assert second.font_size == 28
    assert second.opacity == pytest.approx(0.35)


def test_overlay_moves_when_dragged(qtbot, settings_file: Path) -> None:
    overlay = CaptionOverlay(QSettings(str(settings_file), QSettings.Format.IniFormat))
    qtbot.addWidget(overlay)
    overlay.show()
    qtbot.waitExposed(overlay)
    overlay.move(50, 50)
    start = overlay.pos()
    inside = QPointF(30, 30)

    def send(kind, at: QPointF, buttons) -> None:
        where = QPointF(overlay.mapToGlobal(at.toPoint()))
        button = Qt.MouseButton.LeftButton if kind != QMouseEvent.Type.MouseMove else buttons
        event = QMouseEvent(kind, at, where, button, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(overlay, event)

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send(QMouseEvent.Type.MouseButtonPress, inside, left)
    send(QMouseEvent.Type.MouseMove, inside + QPointF(70, 40), left)
    send(QMouseEvent.Type.MouseButtonRelease, inside + QPointF(70, 40), none)
    assert overlay.pos() == start + QPoint(70, 40)


def test_click_through_sets_the_flag_and_is_undone_from_the_window(qtbot, window) -> None:
    panel = window.interpreter
    assert not panel.click_through_toggle.isEnabled()  # no overlay shown
    panel.overlay_toggle.click()
    overlay = panel.overlay
    panel.click_through_toggle.click()
    flag = Qt.WindowType.WindowTransparentForInput
    assert overlay.windowFlags() & flag
    assert overlay.isVisible()  # re-shown after its flags changed
    panel.click_through_toggle.click()
    assert not overlay.windowFlags() & flag
    # Turned on from the overlay's own menu, the window's toggle follows (the way back).
    menu = overlay.context_menu()
    next(a for a in menu.actions() if a.text().startswith("Click-through")).trigger()
    assert overlay.windowFlags() & flag
    assert panel.click_through_toggle.isChecked()


def test_export_writes_the_chosen_file(qtbot, window, fake, tmp_path, monkeypatch) -> None:
    fake.publish_from_worker(
        caption(0, "Good morning.", "", final=True),
        translated(0, "Good morning.", "早上好。"),
        caption(1, "Thank you.", "", final=True),
        translated(1, "Thank you.", "谢谢。"),
    )
    qtbot.waitUntil(lambda: window.interpreter.captions.translation_text(1) == "谢谢。")
    asked: list[str] = []

    def save_as(parent, title, directory, filters, selected):
        asked.append(filters)
        return str(tmp_path / "meeting"), "WebVTT subtitles (*.vtt)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_as))
    window.interpreter.export_actions["both"].trigger()
    text = (tmp_path / "meeting.vtt").read_text(encoding="utf-8")
    assert text.startswith("WEBVTT")
    assert "Good morning." in text and "早上好。" in text and "谢谢。" in text
    for pattern in ("*.srt", "*.vtt", "*.txt", "*.json"):
        assert pattern in asked[0]

    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", staticmethod(lambda *a: (str(tmp_path / "t.json"), ""))
    )
    window.interpreter.export_actions["translation"].trigger()
    data = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert "谢谢。" in json.dumps(data, ensure_ascii=False)


def test_panel_choices_end_up_in_config_interpret(qtbot, window) -> None:
    panel = window.interpreter
    config = window._config
    engine = panel.engine_combo
    assert not engine.model().item(engine.findData("mt")).isEnabled()  # no mt_model set
    for combo, value in (
        (panel.source_combo, "fr"),
        (panel.target_combo, "zh"),
        (panel.engine_combo, "llm"),
        (panel.input_combo, "monitor"),
    ):
        combo.setCurrentIndex(combo.findData(value))
    assert not engine.model().item(engine.findData("whisper")).isEnabled()  # to English only
    panel.speak_switch.setChecked(False)
    with qtbot.waitSignal(panel.start_requested, timeout=2_000):
        panel.start_button.click()
    interpret = config.interpret
    assert (interpret.source, interpret.target) == ("fr", "zh")
    assert (interpret.engine, interpret.input, interpret.speak) == ("llm", "monitor", False)
    assert panel.start_button.text() == "Stop"
    panel.source_combo.setCurrentIndex(0)
    panel.apply_to(config)
    assert config.interpret.source is None  # Auto-detect


def test_the_last_session_choices_are_shown_again_after_a_restart(qtbot, settings_file) -> None:
    def panel() -> InterpreterPanel:
        made = InterpreterPanel(
            AssistantConfig(), QSettings(str(settings_file), QSettings.Format.IniFormat)
        )
        qtbot.addWidget(made)
        return made

    first = panel()
    assert first.target_combo.currentData() == "en"  # the config's default, at first
    for combo, value in ((first.source_combo, "zh"), (first.target_combo, "fr")):
        combo.setCurrentIndex(combo.findData(value))
    first.input_combo.setCurrentIndex(first.input_combo.findData("monitor"))
    first.apply_to(AssistantConfig())  # what Start does
    second = panel()
    assert second.source_combo.currentData() == "zh"
    assert second.target_combo.currentData() == "fr"
    assert second.input_combo.currentData() == "monitor"


def test_speak_switch_applies_at_once_and_errors_show_in_the_panel(qtbot, window, fake) -> None:
    panel = window.interpreter
    panel.speak_switch.setChecked(False)
    panel.speak_switch.setChecked(True)
    assert fake.calls == [("set_speak", False), ("set_speak", True)]
    fake.publish_from_worker(ErrorOccurred(2, "translate", "the translation server is down"))
    qtbot.waitUntil(panel.error_banner.isVisible)
    assert panel.error_banner.text() == "Translation: the translation server is down"


def test_mode_switch_swaps_the_assistant_for_the_interpreter(
    qtbot, monkeypatch, settings_file: Path
) -> None:
    monkeypatch.setattr(ui.app, "Assistant", FakeAssistant)
    FakeAssistant.instances = []
    recognizer = SimpleNamespace(device="cpu")
    engines = SimpleNamespace(recognizer=recognizer, chat=None, tts="the assistant's voice")
    loads: list[dict] = []
    release = threading.Event()
    interpreters: list[FakeInterpreter] = []

    def load_interpreter(config, progress, recognizer=None, voice=None):
        loads.append(
            {"recognizer": recognizer, "voice": voice, "thread": threading.current_thread()}
        )
        progress("loading the translator")
        release.wait(10)
        return SimpleNamespace(translator="gemma")

    def build(config, interpreter_engines, source, sink):
        interpreters.append(FakeInterpreter(config, interpreter_engines, source, sink))
        return interpreters[-1]

    config = AssistantConfig()
    window = MainWindow(config, settings=QSettings(str(settings_file), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    controller = AppController(
        window, config,
        source_factory=lambda c: SilentSource(16000), sink_factory=lambda c: NullSink(),
        load=lambda c, progress: engines,
        interpreter_source_factory=lambda c: SilentSource(16000),
        load_interpreter=load_interpreter, interpreter_factory=build,
    )  # fmt: skip
    try:
        controller.start()
        qtbot.waitUntil(lambda: controller.assistant is not None)
        first = controller.assistant
        assert first.calls == ["start"]

        window.mode_buttons.button(1).click()  # Interpreter: the assistant lets go of the mic
        qtbot.waitUntil(lambda: first.calls == ["start", "shutdown"])
        assert controller.assistant is None
        panel = window.interpreter
        panel.target_combo.setCurrentIndex(panel.target_combo.findData("zh"))
        panel.start_button.click()
        qtbot.waitUntil(lambda: len(loads) == 1)
        qtbot.waitUntil(lambda: panel.status.detail_text() == "loading the translator")
        assert panel.status.state_text() == "Loading…"  # the window runs while it loads
        panel.start_button.click()  # Stop, while it loads: nothing starts when it is done
        assert panel.start_button.text() == "Start"
        release.set()
        qtbot.waitUntil(lambda: controller._task is None)
        assert interpreters == [] and controller.interpreter is None
        assert panel.status.state_text() == "Stopped"
        panel.start_button.click()  # the engines loaded meanwhile are used
        qtbot.waitUntil(lambda: controller.interpreter is not None)
        assert len(loads) == 1
        interpreter = interpreters[0]
        assert interpreter.calls == [("start",)]
        assert loads[0]["recognizer"] is recognizer  # one Whisper for both modes
        assert loads[0]["voice"] == "the assistant's voice"
        assert loads[0]["thread"] is not threading.main_thread()
        assert interpreter.config.interpret.target == "zh"

        panel.start_button.click()  # Stop
        qtbot.waitUntil(lambda: interpreter.calls == [("start",), ("shutdown",)])
        qtbot.waitUntil(lambda: panel.start_button.text() == "Start")
        assert interpreter.shutdown_threads[0] is not threading.main_thread()
        panel.start_button.click()  # same settings: the engines are reused
        qtbot.waitUntil(lambda: len(interpreters) == 2 and controller.interpreter is not None)
        assert len(loads) == 1
        assert interpreters[1].engines is interpreters[0].engines
        panel.start_button.click()  # Stop; another target language needs other engines
        qtbot.waitUntil(lambda: panel.start_button.text() == "Start")
        panel.target_combo.setCurrentIndex(panel.target_combo.findData("fr"))
        panel.start_button.click()
        qtbot.waitUntil(lambda: len(interpreters) == 3 and controller.interpreter is not None)
        assert len(loads) == 2 and interpreters[2].config.interpret.target == "fr"

        window.mode_buttons.button(0).click()  # back: interpreter down, assistant up again
        qtbot.waitUntil(lambda: interpreters[2].calls == [("start",), ("shutdown",)])
        qtbot.waitUntil(lambda: len(FakeAssistant.instances) == 2)
        assert FakeAssistant.instances[1].calls == ["start"]
        assert controller.interpreter is None
        assert window.talk_button.isEnabled()
    finally:
        release.set()
        assert controller.shutdown() == []


def test_an_interpreter_that_cannot_load_is_explained_in_the_panel(
    qtbot, monkeypatch, settings_file: Path
) -> None:
    monkeypatch.setattr(ui.app, "Assistant", FakeAssistant)
    engines = SimpleNamespace(recognizer=SimpleNamespace(device="cpu"), chat=None, tts=None)

    def load_interpreter(config, progress, recognizer=None, voice=None):
        raise ModelError("no translation model for French to Chinese; set interpret.mt_model")

    config = AssistantConfig()
    window = MainWindow(config, settings=QSettings(str(settings_file), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    controller = AppController(
        window, config,
        source_factory=lambda c: SilentSource(16000), sink_factory=lambda c: NullSink(),
        load=lambda c, progress: engines, load_interpreter=load_interpreter,
        interpreter_factory=lambda *a: pytest.fail("built without engines"),
    )  # fmt: skip
    try:
        controller.start()
        qtbot.waitUntil(lambda: controller.assistant is not None)
        window.set_mode("interpreter")
        window.interpreter.start_button.click()
        panel = window.interpreter
        qtbot.waitUntil(lambda: bool(panel.error_banner.history))
        assert panel.error_banner.history[-1][1].startswith("no translation model")
        assert panel.start_button.text() == "Start"
        assert panel.status.state_text() == "Stopped"
        assert controller.interpreter is None
    finally:
        assert controller.shutdown() == []
