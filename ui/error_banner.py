"""A non-modal strip above the conversation for engine errors.

Errors such as a missing microphone are not fatal to the app (typed questions still
work), so they are shown in place, never in a dialog that blocks the window.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

STAGE_NAMES: dict[str, str] = {
    "audio-in": "Microphone",
    "audio-out": "Speaker",
    "vad": "Voice detection",
    "asr": "Speech recognition",
    "llm": "Language model",
    "tts": "Voice",
    "load": "Loading the models",
    "start": "Starting the assistant",
}


_MAX_LINES = 3


class ErrorBanner(QFrame):
    """Shows current problems plainly, one line per stage; hidden until there is one.

    A stage that fails again (the microphone retrying, each reply without a speaker)
    replaces its own line instead of stacking copies; Dismiss clears them all.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setProperty("severity", "error")
        self._text = QLabel()
        self._text.setObjectName("errorText")
        self._text.setWordWrap(True)
        self._text.setTextFormat(Qt.TextFormat.PlainText)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        dismiss = QPushButton("×")
        dismiss.setObjectName("dismissButton")
        dismiss.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        dismiss.setToolTip("Dismiss")
        dismiss.setCursor(Qt.CursorShape.PointingHandCursor)
        dismiss.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 10, 8, 10)
        layout.addWidget(self._text, 1)
        layout.addWidget(dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.history: list[tuple[str, str, bool]] = []  # every (stage, message, fatal) shown
        self._current: dict[str, tuple[str, bool]] = {}  # stage -> (line, fatal), oldest first
        self.hide()

    @Slot(str, str, bool)
    def show_error(self, stage: str, message: str, fatal: bool = False) -> None:
        self.history.append((stage, message, fatal))
        where = STAGE_NAMES.get(stage, stage)
        self._current.pop(stage, None)
        self._current[stage] = (f"{where}: {message}" if where else message, fatal)
        lines = [line for line, _ in self._current.values()][-_MAX_LINES:]
        self._text.setText("\n".join(lines))
        any_fatal = any(fatal for _, fatal in self._current.values())
        self.setProperty("severity", "fatal" if any_fatal else "error")
        for widget in (self, self._text):  # the text colour depends on the banner's severity
            widget.style().unpolish(widget)
            widget.style().polish(widget)
        self.show()

    @Slot(str)
    def clear_stage(self, stage: str) -> None:
        """A stage recovered (e.g. the microphone is back): drop its line."""
        if self._current.pop(stage, None) is None:
            return
        if not self._current:
            self.hide()
            return
        self._text.setText("\n".join(line for line, _ in self._current.values()))

    @Slot()
    def dismiss(self) -> None:
        self._current.clear()
        self.hide()

    def text(self) -> str:
        return self._text.text()
