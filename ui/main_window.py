"""The main window: two modes, chosen at the top. Assistant: conversation, push-to-talk,
Stop, typed questions, state and errors. Interpreter: ``ui.interpreter_panel``.

The window knows the assistant only through the few calls in ``AssistantControls`` and
the events it receives through an ``EngineBridge``; it never loads models or opens audio
devices itself (see ``ui.app`` for that), so it can be built around any assistant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QEvent, QSettings, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from assistant.config import AssistantConfig
from assistant.echo.setup import EchoSetup
from assistant.events import Event, State
from ui.bridge import EngineBridge
from ui.conversation_view import ConversationView
from ui.error_banner import ErrorBanner
from ui.interpreter_panel import InterpreterPanel
from ui.status_line import StatusLine
from ui.talk_button import TalkButton

WINDOW_TITLE = "Voice Assistant"
_BUSY = (State.THINKING, State.SPEAKING)
_HINT_PTT = "Hold the talk button (or the Space key) and ask a question."
_HINT_HANDS_FREE = "Just speak: the assistant listens. You can also hold the talk button."
# What the status line says while a device is missing (the banner says why)
_NO_MICROPHONE = "no microphone: type a question"
_HINT_NO_MICROPHONE = "No microphone is working: type a question below."
_NO_SPEAKER = "No speaker: replies as text"
MODES = {"assistant": "Assistant", "interpreter": "Interpreter"}


class AssistantControls(Protocol):
    """What the window needs from ``assistant.pipeline.Assistant``."""

    config: AssistantConfig
    echo: EchoSetup  # how it keeps from hearing itself (shown in the status line)

    def subscribe(self, handler: Callable[[Event], None]) -> None: ...

    def push_to_talk(self, down: bool) -> None: ...

    def ask(self, text: str) -> int: ...

    def stop_speaking(self) -> None: ...

    def set_mode(self, mode: str) -> None: ...


class MainWindow(QMainWindow):
    """Drives one assistant: attach it, and the window follows its events. The
    Interpreter page (``interpreter``) is driven the same way, by ``ui.app``."""

    mode_changed = Signal(str)  # "assistant" or "interpreter", chosen by the user

    def __init__(
        self,
        config: AssistantConfig | None = None,
        parent: QWidget | None = None,
        *,
        settings: QSettings | None = None,  # where the caption overlay keeps its place
    ):
        super().__init__(parent)
        self.setWindowTitle(WINDOW_TITLE)
        self.resize(600, 720)
        self.setMinimumSize(540, 480)
        self._config = config or AssistantConfig()
        self._assistant: AssistantControls | None = None
        self._bridge: EngineBridge | None = None
        self._key_talking = False  # Space is holding the talk button
        self._note = ""  # shown next to "Listening" after a turn that produced nothing
        self._missing: set[str] = set()  # "audio-in", "audio-out": devices not working now
        self._echo = ""  # how the assistant keeps from hearing itself

        self.error_banner = ErrorBanner()
        self.conversation = ConversationView()
        self.status = StatusLine()
        self.question_edit = QLineEdit()
        self.question_edit.setObjectName("questionEdit")
        self.question_edit.setPlaceholderText("Or type a question and press Enter")
        self.question_edit.setClearButtonEnabled(True)
        self.question_edit.returnPressed.connect(self._on_question_typed)
        # Esc leaves the text box, so that Space talks again.
        leave = QShortcut(QKeySequence(Qt.Key.Key_Escape), self.question_edit)
        leave.setContext(Qt.ShortcutContext.WidgetShortcut)
        leave.activated.connect(self.conversation.setFocus)

        self.talk_button = TalkButton()
        self.talk_button.held_changed.connect(self._on_talk_held)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.stop_button.setMinimumHeight(44)
        self.stop_button.setToolTip("Stop the reply now")
        self.stop_button.clicked.connect(self._on_stop)
        self.hands_free = QCheckBox("Hands-free")
        self.hands_free.setObjectName("handsFree")
        self.hands_free.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.hands_free.setToolTip("Listen all the time and answer whenever you stop speaking")
        self.hands_free.setChecked(self._config.vad.mode == "hands-free")
        self.hands_free.toggled.connect(self._on_hands_free)

        self.interpreter = InterpreterPanel(self._config, settings)
        self.mode_buttons = QButtonGroup(self)
        self.mode_buttons.setExclusive(True)
        self._mode = "assistant"
        self.pages = QStackedWidget()
        self.pages.setObjectName("pages")
        self.setCentralWidget(self._build_layout())
        self._set_controls_enabled(False)
        self._update_hint()
        self.conversation.setFocus()

    def _build_layout(self) -> QWidget:
        controls = QFrame()
        controls.setObjectName("controls")
        grid = QGridLayout(controls)
        grid.setContentsMargins(18, 14, 18, 16)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(14)
        grid.addWidget(self.question_edit, 0, 0, 1, 3)
        grid.addWidget(self.hands_free, 1, 0, Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(self.talk_button, 1, 1, Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(self.stop_button, 1, 2, Qt.AlignmentFlag.AlignRight)
        grid.setColumnStretch(0, 1)  # equal side columns keep the talk button centred
        grid.setColumnStretch(2, 1)

        banner_box = QVBoxLayout()
        banner_box.setContentsMargins(14, 12, 14, 0)
        banner_box.addWidget(self.error_banner)

        page = QWidget()
        page.setObjectName("assistantPage")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(banner_box)
        layout.addWidget(self.conversation, 1)
        layout.addWidget(controls)
        layout.addWidget(self.status)
        self.pages.addWidget(page)
        self.pages.addWidget(self.interpreter)

        bar = QFrame()
        bar.setObjectName("modeBar")
        row = QHBoxLayout(bar)
        row.setContentsMargins(14, 10, 14, 10)
        row.setSpacing(0)
        row.addStretch(1)
        for i, (mode, text) in enumerate(MODES.items()):
            button = QPushButton(text)
            button.setObjectName("modeButton")
            button.setProperty("mode", mode)
            button.setProperty("side", "left" if i == 0 else "right")
            button.setCheckable(True)
            button.setChecked(mode == self._mode)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.mode_buttons.addButton(button, i)
            row.addWidget(button)
        row.addStretch(1)
        self.mode_buttons.idClicked.connect(self._on_mode_clicked)

        central = QWidget()
        central.setObjectName("central")
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(bar)
        column.addWidget(self.pages, 1)
        return central

    # -- modes ---------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        """Show ``mode``'s page and announce it (``mode_changed``) if it is a change."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        index = list(MODES).index(mode)
        self.mode_buttons.button(index).setChecked(True)
        self.pages.setCurrentIndex(index)
        if mode == self._mode:
            return
        self._mode = mode
        if mode == "assistant":
            self.conversation.setFocus()
        self.mode_changed.emit(mode)

    @Slot(int)
    def _on_mode_clicked(self, index: int) -> None:
        self.set_mode(list(MODES)[index])

    # -- wiring --------------------------------------------------------------------------
    @property
    def assistant(self) -> AssistantControls | None:
        return self._assistant

    @property
    def bridge(self) -> EngineBridge | None:
        return self._bridge

    def attach(self, assistant: AssistantControls) -> EngineBridge:
        """Follow ``assistant``'s events and drive it; call before ``assistant.start()``."""
        self.detach()
        self._assistant = assistant
        self._config = assistant.config
        bridge = EngineBridge(self)
        bridge.state_changed.connect(self._on_state)
        bridge.speech_started.connect(self.conversation.begin_user)
        bridge.partial_transcript.connect(self.conversation.show_partial)
        bridge.final_transcript.connect(self.conversation.set_user)
        bridge.nothing_heard.connect(self._on_nothing_heard)
        bridge.reply_token.connect(self.conversation.append_reply)
        bridge.reply_finished.connect(self.conversation.finish_reply)
        bridge.turn_cancelled.connect(self._on_turn_cancelled)
        bridge.timings.connect(self._on_timings)
        bridge.error.connect(self.show_error)
        bridge.device_restored.connect(self._on_device_restored)
        assistant.subscribe(bridge.post)
        self._bridge = bridge
        self.hands_free.setChecked(self._config.vad.mode == "hands-free")
        self._echo = assistant.echo.description
        self._show_devices()
        self._set_controls_enabled(True)
        return bridge

    def detach(self) -> None:
        """Stop following the assistant (before it shuts down); it has no unsubscribe."""
        if self._bridge is not None:
            self.talk_button.set_held(False)
            self._bridge.close()
            self._bridge = None
        self._assistant = None
        self._set_controls_enabled(False)

    # -- shown state ---------------------------------------------------------------------
    def show_loading(self, message: str) -> None:
        self.status.set_state(State.LOADING, message)

    def show_load_failed(self, message: str) -> None:
        self.status.set_state(State.STOPPED, "the models could not be loaded")
        self.show_error("load", message, fatal=True)

    @Slot(str, str, bool)
    def show_error(self, stage: str, message: str, fatal: bool = False) -> None:
        """Show an error in place; the window keeps running (typed questions may still work)."""
        self.error_banner.show_error(stage, message, fatal)
        if stage in ("audio-in", "audio-out"):
            self._missing.add(stage)
            self._show_devices()

    @Slot(str)
    def _on_device_restored(self, stage: str) -> None:
        self.error_banner.clear_stage(stage)
        self._missing.discard(stage)
        self._show_devices()

    def _show_devices(self) -> None:
        """The status line does not say "Listening" without a microphone, nor how the
        assistant keeps from hearing itself without a speaker."""
        if "audio-out" in self._missing:
            self.status.set_echo(_NO_SPEAKER)
        elif self._echo:
            self.status.set_echo(self._echo)
        if self.status.state == State.LISTENING:
            self._show_listening()
        self._update_hint()

    def _show_listening(self) -> None:
        """Listening, or without a microphone, ready for a typed question."""
        no_microphone = "audio-in" in self._missing
        detail = self._note or (_NO_MICROPHONE if no_microphone else "")
        self.status.set_state(State.LISTENING, detail, "Ready" if no_microphone else None)

    def _set_controls_enabled(self, enabled: bool) -> None:
        for widget in (self.talk_button, self.question_edit, self.hands_free):
            widget.setEnabled(enabled)
        self.stop_button.setEnabled(enabled and self.status.state in _BUSY)

    def _update_hint(self) -> None:
        hands_free = self.hands_free.isChecked()
        if "audio-in" in self._missing:
            self.conversation.set_hint(_HINT_NO_MICROPHONE)
        else:
            self.conversation.set_hint(_HINT_HANDS_FREE if hands_free else _HINT_PTT)

    # -- engine events -------------------------------------------------------------------
    @Slot(object)
    def _on_state(self, state: State) -> None:
        if state == State.LISTENING:
            self._show_listening()
        else:
            self.status.set_state(state)
        self._note = ""
        self.stop_button.setEnabled(self._assistant is not None and state in _BUSY)
        if state == State.STOPPED:
            self._set_controls_enabled(False)

    @Slot(int, str)
    def _on_nothing_heard(self, turn: int, reason: str) -> None:
        self.conversation.drop_user(turn)
        self._note = "didn't catch that, try again"

    @Slot(int, str)
    def _on_turn_cancelled(self, turn: int, reason: str) -> None:
        self.conversation.mark_interrupted(turn)

    @Slot(int, object)
    def _on_timings(self, turn: int, timings_ms: dict[str, float | None]) -> None:
        self.status.set_timings(timings_ms)

    # -- user actions --------------------------------------------------------------------
    @Slot(bool)
    def _on_talk_held(self, held: bool) -> None:
        if self._assistant is not None:
            self._assistant.push_to_talk(held)

    @Slot()
    def _on_stop(self) -> None:
        if self._assistant is not None:
            self._assistant.stop_speaking()

    @Slot()
    def _on_question_typed(self) -> None:
        text = self.question_edit.text().strip()
        if text and self._assistant is not None:
            self.question_edit.clear()
            self._assistant.ask(text)

    @Slot(bool)
    def _on_hands_free(self, on: bool) -> None:
        mode = "hands-free" if on else "push-to-talk"
        if self._assistant is not None:
            self._assistant.set_mode(mode)  # the engine drops any half-heard utterance
        else:
            self._config.vad.mode = mode
        self._update_hint()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        # Reached only when no text box has focus: the buttons never take focus.
        if event.key() == Qt.Key.Key_Space and not event.modifiers():
            if not event.isAutoRepeat() and self.talk_button.isEnabled():
                self._key_talking = True
                self.talk_button.set_held(True)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat() and self._key_talking:
                self._key_talking = False
                self.talk_button.set_held(False)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        super().changeEvent(event)
        # A Space release that lands in another window must not leave us talking forever.
        if (
            event.type() == QEvent.Type.ActivationChange
            and not self.isActiveWindow()
            and self._key_talking
        ):
            self._key_talking = False
            self.talk_button.set_held(False)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.talk_button.set_held(False)
        self.interpreter.close_overlay()  # a window of its own
        super().closeEvent(event)
