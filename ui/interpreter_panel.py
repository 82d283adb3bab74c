"""The Interpreter page: languages, engine, input, speak on/off, Start/Stop, the captions,
the caption overlay's toggles, Export, and the interpreter's state and errors.

Like the main window, the panel knows the interpreter only through the few calls in
``InterpreterControls`` and the events it receives through an ``EngineBridge``; building,
starting and stopping it is ``ui.app``'s job (asked for with ``start_requested`` and
``stop_requested``). Choices are written into ``config.interpret`` when Start is pressed,
so a change made while it runs applies on the next Start; "Speak translation" applies at
once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QSettings, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from assistant.config import AssistantConfig
from assistant.errors import UserFacingError
from assistant.events import Event, SourceCaption, State, TranslatedCaption
from assistant.interpret.languages import language_name
from assistant.interpret.record import CaptionRecord
from ui.bridge import EngineBridge
from ui.caption_overlay import CaptionOverlay
from ui.caption_view import CaptionView
from ui.error_banner import ErrorBanner
from ui.interpreter_status import InterpreterStatus

LANGUAGES = (
    "en", "zh", "fr", "de", "es", "it", "pt", "nl", "ru", "uk", "pl", "cs", "sv", "da", "fi",
    "no", "tr", "el", "ar", "he", "hi", "ja", "ko", "vi", "th", "id", "yue",
)  # fmt: skip
ENGINES = {
    "auto": "Auto",
    "whisper": "Whisper (to English only)",
    "llm": "LLM",
    "mt": "MT model",
}
INPUTS = {"mic": "Microphone", "monitor": "System audio"}
EXPORT_FILTERS = {
    "SubRip subtitles (*.srt)": ".srt",
    "WebVTT subtitles (*.vtt)": ".vtt",
    "Plain text (*.txt)": ".txt",
    "JSON (*.json)": ".json",
}
EXPORT_WHICH = {
    "both": "Both languages…",
    "source": "Speaker's words only…",
    "translation": "Translation only…",
}
# Stages the error banner has no name for.
_STAGES = {"export": "Export", "translate": "Translation", "interpret": "Interpreter"}


class InterpreterControls(Protocol):
    """What the panel needs from ``assistant.pipeline.modes.interpreter.Interpreter``."""

    record: CaptionRecord

    @property
    def description(self) -> str: ...  # translator and voice, one line

    def subscribe(self, handler: Callable[[Event], None]) -> None: ...

    def unsubscribe(self, handler: Callable[[Event], None]) -> None: ...

    def set_speak(self, on: bool) -> None: ...

    def stop_speaking(self) -> None: ...


class InterpreterPanel(QWidget):
    start_requested = Signal()  # the choices are in config.interpret already
    stop_requested = Signal()

    def __init__(
        self,
        config: AssistantConfig | None = None,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("interpreterPanel")
        self._config = config or AssistantConfig()
        self._interpreter: InterpreterControls | None = None
        self._bridge: EngineBridge | None = None
        self._record: CaptionRecord | None = None  # the last session's, kept for export
        self._session_languages = ("", "")
        self._running = False  # started, or starting

        self.error_banner = ErrorBanner()
        self.captions = CaptionView()
        self._settings = settings
        self._overlay: CaptionOverlay | None = None  # made when first needed
        self.status = InterpreterStatus()
        self.status.set_state(State.STOPPED, "press Start to interpret")
        interpret = self._config.interpret

        self.source_combo = QComboBox()
        self.source_combo.addItem("Auto-detect", "auto")
        self.target_combo = QComboBox()
        for code in LANGUAGES:
            self.source_combo.addItem(language_name(code), code)
            self.target_combo.addItem(language_name(code), code)
        self.engine_combo = QComboBox()
        for key, text in ENGINES.items():
            self.engine_combo.addItem(text, key)
        self.input_combo = QComboBox()
        for key, text in INPUTS.items():
            self.input_combo.addItem(text, key)
        if interpret.input not in INPUTS:  # a device named in the config file
            self.input_combo.addItem(interpret.input, interpret.input)
        mt = self.engine_combo.model().item(self.engine_combo.findData("mt"))
        mt.setEnabled(bool(interpret.mt_model))
        if not interpret.mt_model:
            mt.setToolTip("Set interpret.mt_model in the config file to a translation model")
        self.target_combo.currentIndexChanged.connect(self._on_target_changed)
        _select(self.source_combo, interpret.source or "auto")
        _select(self.target_combo, interpret.target)
        self._on_target_changed()
        _select(self.engine_combo, interpret.engine)
        _select(self.input_combo, interpret.input)
        self._recall()

        self.speak_switch = QCheckBox("Speak translation")
        self.speak_switch.setObjectName("speakSwitch")
        self.speak_switch.setToolTip("Read each translation aloud; off: captions only")
        self.speak_switch.setChecked(interpret.speak)
        self.speak_switch.toggled.connect(self._on_speak)
        self.overlay_toggle = QCheckBox("Show caption overlay")
        self.overlay_toggle.setToolTip("A caption window to keep over a call or a video")
        self.overlay_toggle.toggled.connect(self._on_overlay_toggled)
        self.click_through_toggle = QCheckBox("Click-through")
        self.click_through_toggle.setToolTip(
            "Clicks go through the caption window to the one below (turn off here)"
        )
        self.click_through_toggle.setEnabled(False)
        self.click_through_toggle.toggled.connect(lambda on: self.overlay.set_click_through(on))

        self.export_button = QPushButton("Export…")
        self.export_button.setObjectName("exportButton")
        self.export_button.setToolTip("Save the captions as subtitles, text or JSON")
        menu = QMenu(self.export_button)
        self.export_actions = {}
        for which, text in EXPORT_WHICH.items():
            action = menu.addAction(text)
            action.triggered.connect(lambda _=False, w=which: self.export(w))
            self.export_actions[which] = action
        self.export_button.setMenu(menu)
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("interpretButton")
        self.start_button.setMinimumSize(140, 44)
        self.start_button.clicked.connect(self._on_start_stop)
        self._build_layout()
        self._update_buttons()

    def _build_layout(self) -> None:
        settings = QFrame()
        settings.setObjectName("interpreterSettings")
        grid = QGridLayout(settings)
        grid.setContentsMargins(16, 12, 16, 12)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(10)
        for row, col, text, combo in (
            (0, 0, "From", self.source_combo),
            (0, 2, "To", self.target_combo),
            (1, 0, "Engine", self.engine_combo),
            (1, 2, "Input", self.input_combo),
        ):
            label = QLabel(text)
            label.setObjectName("fieldLabel")
            label.setBuddy(combo)
            grid.addWidget(label, row, col)
            grid.addWidget(combo, row, col + 1)
        toggles = QHBoxLayout()
        toggles.setSpacing(18)
        for toggle in (self.speak_switch, self.overlay_toggle, self.click_through_toggle):
            toggles.addWidget(toggle)
        toggles.addStretch(1)
        grid.addLayout(toggles, 2, 0, 1, 4)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

        controls = QFrame()
        controls.setObjectName("controls")
        row = QHBoxLayout(controls)
        row.setContentsMargins(18, 12, 18, 12)
        row.addWidget(self.export_button)
        row.addStretch(1)
        row.addWidget(self.start_button)

        top = QVBoxLayout()
        top.setContentsMargins(14, 12, 14, 8)
        top.setSpacing(10)
        top.addWidget(self.error_banner)
        top.addWidget(settings)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addWidget(self.captions, 1)
        layout.addWidget(controls)
        layout.addWidget(self.status)

    # -- choices --------------------------------------------------------------------------
    def apply_to(self, config: AssistantConfig) -> None:
        """Write the shown choices into ``config.interpret`` (and remember them for the
        next time the window opens)."""
        interpret = config.interpret
        source = self.source_combo.currentData()
        interpret.source = None if source == "auto" else source
        interpret.target = self.target_combo.currentData()
        interpret.engine = self.engine_combo.currentData()
        interpret.input = self.input_combo.currentData()
        interpret.speak = self.speak_switch.isChecked()
        if self._settings is not None:
            for key, combo in self._choices().items():
                self._settings.setValue(f"interpreter/{key}", combo.currentData())

    def _choices(self) -> dict[str, QComboBox]:
        return {
            "source": self.source_combo,
            "target": self.target_combo,
            "engine": self.engine_combo,
            "input": self.input_combo,
        }

    def _recall(self) -> None:
        """The languages, engine and input of the last session started from the window
        (only where that choice is still offered; the config file gives the rest)."""
        if self._settings is None:
            return
        for key, combo in self._choices().items():
            value = self._settings.value(f"interpreter/{key}")
            index = combo.findData(value) if value is not None else -1
            item = combo.model().item(index) if index >= 0 else None
            if item is not None and item.isEnabled():
                combo.setCurrentIndex(index)
        self._on_target_changed()

    @Slot()
    def _on_target_changed(self) -> None:
        to_english = self.target_combo.currentData() == "en"
        whisper = self.engine_combo.findData("whisper")
        self.engine_combo.model().item(whisper).setEnabled(to_english)
        if not to_english and self.engine_combo.currentIndex() == whisper:
            _select(self.engine_combo, "auto")

    @Slot(bool)
    def _on_speak(self, on: bool) -> None:
        self._config.interpret.speak = on
        if self._interpreter is not None:
            self._interpreter.set_speak(on)

    # -- running --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    @property
    def interpreter(self) -> InterpreterControls | None:
        return self._interpreter

    def set_running(self, running: bool, detail: str = "") -> None:
        """Started (or starting, with ``detail`` saying what loads), or stopped."""
        self._running = running
        if running:
            self.status.set_state(State.LOADING, detail or "starting")
        elif self._interpreter is None:
            self.status.set_state(State.STOPPED, detail)
        self._update_buttons()

    def show_loading(self, message: str) -> None:
        self.status.set_state(State.LOADING, message)

    @Slot()
    def _on_start_stop(self) -> None:
        if self._running:
            self.stop_requested.emit()
            return
        self.apply_to(self._config)
        self.error_banner.dismiss()
        self.set_running(True)
        self.start_requested.emit()

    def _update_buttons(self) -> None:
        self.start_button.setText("Stop" if self._running else "Start")
        self.start_button.setProperty("running", self._running)
        self.start_button.style().unpolish(self.start_button)
        self.start_button.style().polish(self.start_button)

    def attach(self, interpreter: InterpreterControls) -> EngineBridge:
        """Follow a new session; call before ``interpreter.start()``."""
        self.detach()
        self._interpreter = interpreter
        self._record = interpreter.record
        interpret = self._config.interpret
        self._session_languages = (interpret.source or "", interpret.target)
        self.captions.clear()
        if self._overlay is not None:
            self._overlay.clear()
        bridge = EngineBridge(self)
        bridge.source_caption.connect(self._on_source_caption)
        bridge.translated_caption.connect(self._on_translated_caption)
        bridge.state_changed.connect(self._on_state)
        bridge.error.connect(self.show_error)
        bridge.device_restored.connect(lambda stage: self.error_banner.clear_stage(_name(stage)))
        interpreter.subscribe(bridge.post)
        self._bridge = bridge
        self.status.set_description(interpreter.description)
        self._running = True
        self._update_buttons()
        return bridge

    def detach(self) -> None:
        """Stop following the interpreter (before it shuts down)."""
        if self._bridge is not None:
            self._bridge.close()
            if self._interpreter is not None:
                self._interpreter.unsubscribe(self._bridge.post)
            self._bridge = None
        self._interpreter = None

    @Slot(object)
    def _on_source_caption(self, event: SourceCaption) -> None:
        self.captions.show_source(event)
        if self._overlay is not None:
            self._overlay.show_source(event)

    @Slot(object)
    def _on_translated_caption(self, event: TranslatedCaption) -> None:
        self.captions.show_translation(event)
        if self._overlay is not None:
            self._overlay.show_translation(event)

    @Slot(object)
    def _on_state(self, state: State) -> None:
        self.status.set_state(state)

    @Slot(str, str, bool)
    def show_error(self, stage: str, message: str, fatal: bool = False) -> None:
        self.error_banner.show_error(_name(stage), message, fatal)

    # -- overlay --------------------------------------------------------------------------
    @property
    def overlay(self) -> CaptionOverlay:
        """The caption window (a top-level window of its own), made on first use."""
        if self._overlay is None:
            self._overlay = CaptionOverlay(self._settings)
            self._overlay.click_through_changed.connect(self._on_click_through_changed)
            self._overlay.closed.connect(lambda: self.overlay_toggle.setChecked(False))
        return self._overlay

    def close_overlay(self) -> None:
        if self._overlay is not None:
            self._overlay.close()

    @Slot(bool)
    def _on_overlay_toggled(self, on: bool) -> None:
        self.overlay.setVisible(on)
        self.click_through_toggle.setEnabled(on)
        if not on:
            self.click_through_toggle.setChecked(False)

    @Slot(bool)
    def _on_click_through_changed(self, on: bool) -> None:
        if self.click_through_toggle.isChecked() != on:  # turned on from its own menu
            self.click_through_toggle.setChecked(on)

    # -- export ---------------------------------------------------------------------------
    def export(self, which: str = "both") -> Path | None:
        """Ask where, then save the last session's captions; returns the file written."""
        segments = self._record.segments() if self._record is not None else []
        if not segments:
            self.show_error("export", "There are no captions to export yet.")
            return None
        default = Path.home() / time.strftime("captions-%Y%m%d-%H%M.srt")
        filters = list(EXPORT_FILTERS)
        name, chosen = QFileDialog.getSaveFileName(
            self, "Export captions", str(default), ";;".join(filters), filters[0]
        )
        if not name:
            return None
        path = Path(name)
        if path.suffix.lower() not in EXPORT_FILTERS.values():
            path = path.with_name(path.name + EXPORT_FILTERS.get(chosen, ".srt"))
        source, target = self._session_languages
        try:
            from assistant.interpret.export import write_export

            write_export(path, segments, which, language=source, target=target)
        except UserFacingError as exc:
            self.show_error("export", str(exc))
            return None
        self.error_banner.clear_stage(_name("export"))
        self.status.set_detail(f"saved {len(segments)} captions to {path.name}")
        return path

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.close_overlay()
        super().closeEvent(event)


def _select(combo: QComboBox, data: object) -> None:
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)


def _name(stage: str) -> str:
    return _STAGES.get(stage, stage)
