"""The Interpreter page's bottom line: the state, and which translator and voice run."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from ui.status_line import StatusLine


class _ElidedLabel(QLabel):
    """One line that ends in "…" when it does not fit; the whole text is its tooltip."""

    def __init__(self) -> None:
        super().__init__()
        self._full = ""
        self.setMinimumWidth(40)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        metrics = self.fontMetrics()
        self.setText(metrics.elidedText(self._full, Qt.TextElideMode.ElideRight, self.width()))


class InterpreterStatus(StatusLine):
    """The state, and which translator and voice are in use."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._description = _ElidedLabel()
        self._description.setObjectName("descriptionText")
        layout = self.layout()
        layout.setStretch(2, 0)  # the transient detail takes only what its text needs
        layout.insertWidget(3, self._description, 1)

    def set_description(self, text: str) -> None:
        self._description.set_full_text(text)

    def description_text(self) -> str:
        return self._description.full_text()
