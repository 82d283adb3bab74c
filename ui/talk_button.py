"""The push-to-talk button: talking lasts exactly as long as it is held.

QPushButton's own mouse handling "releases" when the pointer slides off the button and
"presses" again when it comes back, which would split one question into two turns. This
button holds from press to release wherever the pointer goes (the press grabs the mouse).
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QEvent, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QMouseEvent, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QPushButton, QWidget

_MIC_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none"
 stroke="{color}" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
<rect x="9" y="2" width="6" height="12" rx="3" fill="{color}"/>
<path d="M5 10v1a7 7 0 0 0 14 0v-1"/><line x1="12" y1="18" x2="12" y2="22"/>
<line x1="8" y1="22" x2="16" y2="22"/></svg>"""

IDLE_TEXT = "Hold to talk"
HELD_TEXT = "Release to send"


def mic_icon(color: str = "#ffffff", size: int = 48) -> QIcon:
    """A microphone glyph drawn from inline SVG (no icon theme or image plugin needed)."""
    renderer = QSvgRenderer(QByteArray(_MIC_SVG.format(color=color).encode()))
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    renderer.render(painter)
    painter.end()
    return QIcon(pixmap)


class TalkButton(QPushButton):
    """Emits ``held_changed(True)`` on press and ``held_changed(False)`` on release."""

    held_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(IDLE_TEXT, parent)
        self.setObjectName("talkButton")
        # No keyboard focus: Space belongs to the window (hold to talk), not to a click.
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setIcon(mic_icon())
        self.setIconSize(QSize(22, 22))
        self.setMinimumHeight(56)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Hold while you speak (mouse or Space key); release when done.")
        self.setProperty("held", False)
        self._held = False

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        # Wide enough for either label, so the button keeps its size when pressed.
        hint = super().sizeHint()
        metrics = self.fontMetrics()
        extra = hint.width() - metrics.horizontalAdvance(self.text())
        widest = max(metrics.horizontalAdvance(text) for text in (IDLE_TEXT, HELD_TEXT))
        return QSize(max(220, widest + extra), max(56, hint.height()))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return self.sizeHint()

    @property
    def held(self) -> bool:
        return self._held

    def set_held(self, held: bool) -> None:
        """Press or release from code (the Space key); a no-op if nothing changes."""
        if held == self._held or (held and not self.isEnabled()):
            return
        self._held = held
        self.setDown(held)
        self.setText(HELD_TEXT if held else IDLE_TEXT)
        self.setProperty("held", held)
        self.style().unpolish(self)
        self.style().polish(self)
        self.held_changed.emit(held)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            self.set_held(True)
            event.accept()
        else:
            event.ignore()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            self.set_held(False)
            event.accept()
        else:
            event.ignore()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        event.accept()  # sliding off the button keeps talking

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        super().changeEvent(event)
        if event.type() == QEvent.Type.EnabledChange and not self.isEnabled():
            self.set_held(False)  # never leave the engine "pressed" behind a disabled button
