"""A caption window to keep over a call or a video: the last one or two segments, the
speaker's words small and the translation large, on a translucent dark background.

It has no frame: drag it anywhere to move it, resize it from the grip in the bottom-right
corner, Ctrl+wheel changes the font size, and the context menu holds font size, opacity
and what to show. Its place, size, font size, opacity and choices are kept in QSettings.

Click-through (``set_click_through``) passes every click to the window below; the overlay
then cannot be clicked at all, so the way back is the main window's toggle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from PySide6.QtCore import QPoint, QRect, QSettings, QSize, Qt, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QColor,
    QContextMenuEvent,
    QGuiApplication,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QLabel, QMenu, QSizeGrip, QVBoxLayout, QWidget

from ui.caption_view import caption_html

Show = Literal["both", "translation", "source"]
SHOWS: dict[str, str] = {
    "both": "Speaker's words and translation",
    "translation": "Translation only",
    "source": "Speaker's words only",
}
FONT_SIZES = (14, 18, 22, 26, 32, 40, 48, 60)  # the translation's size in pixels
OPACITIES = (0.35, 0.5, 0.65, 0.8, 0.95)
DEFAULT_FONT = 26
DEFAULT_OPACITY = 0.8
DEFAULT_SIZE = QSize(760, 170)
MIN_FONT, MAX_FONT = 10, 96
_GROUP = "captionOverlay"


@dataclass
class _Shown:
    confirmed: str = ""
    tentative: str = ""
    language: str = ""
    translation: str = ""


class CaptionOverlay(QWidget):
    """Shows the newest segments; feed it ``show_source`` / ``show_translation``."""

    click_through_changed = Signal(bool)
    closed = Signal()  # hidden from its own menu

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("captionOverlay")
        self.setWindowTitle("Captions")
        self._flags = (
            Qt.WindowType.Window
            | Qt.WindowType.FramelessWindowHint
            | Qt.WindowType.WindowStaysOnTopHint
            | Qt.WindowType.Tool  # no task-bar entry of its own
        )
        self.setWindowFlags(self._flags)
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
        self.setMinimumSize(240, 70)
        self._settings = settings if settings is not None else default_settings()
        self._segments: dict[int, _Shown] = {}
        self._drag_from: QPoint | None = None  # cursor offset from the top-left corner
        self._click_through = False

        self._labels: list[tuple[QLabel, QLabel]] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 12, 18, 12)
        layout.setSpacing(2)
        layout.addStretch(1)  # the newest line sits at the bottom, as subtitles do
        for _ in range(2):
            source, translation = QLabel(), QLabel()
            source.setObjectName("overlaySource")
            source.setTextFormat(Qt.TextFormat.RichText)
            translation.setObjectName("overlayTranslation")
            translation.setTextFormat(Qt.TextFormat.PlainText)
            for label in (source, translation):
                label.setWordWrap(True)
                label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
                layout.addWidget(label)
            self._labels.append((source, translation))
        self._grip = QSizeGrip(self)
        self._grip.setObjectName("overlayGrip")
        self._grip.resize(16, 16)

        self._font_size = DEFAULT_FONT
        self._opacity = DEFAULT_OPACITY
        self._show: Show = "both"
        self._lines = 2
        self._restore()

    # -- captions -------------------------------------------------------------------------
    @Slot(object)
    def show_source(self, event) -> None:  # SourceCaption
        shown = self._segment(event.segment)
        if event.confirmed.startswith(shown.confirmed):
            shown.confirmed = event.confirmed
        shown.tentative = "" if event.final else event.tentative
        shown.language = event.language or shown.language
        self._render()

    @Slot(object)
    def show_translation(self, event) -> None:  # TranslatedCaption
        shown = self._segment(event.segment)
        if not shown.confirmed and event.source:
            shown.confirmed, shown.language = event.source, event.source_language
        shown.tentative = ""
        shown.translation = event.text
        self._render()

    @Slot()
    def clear(self) -> None:
        self._segments.clear()
        self._render()

    def _segment(self, number: int) -> _Shown:
        shown = self._segments.get(number)
        if shown is None:
            shown = self._segments[number] = _Shown()
            for old in sorted(self._segments)[:-4]:  # a few, for "last two" with late ones
                del self._segments[old]
        return shown

    def _render(self) -> None:
        numbers = sorted(self._segments)
        if self._show == "translation":  # a segment appears once it is translated
            numbers = [n for n in numbers if self._segments[n].translation]
        numbers = numbers[-self._lines :]
        for i, (source, translation) in enumerate(self._labels):
            shown = self._segments[numbers[i]] if i < len(numbers) else None
            if shown is None:
                source.hide()
                translation.hide()
                continue
            source.setText(caption_html(shown.confirmed, shown.tentative, shown.language))
            translation.setText(shown.translation)
            source.setVisible(self._show != "translation" and bool(source.text()))
            translation.setVisible(self._show != "source" and bool(shown.translation))

    def shown_text(self) -> list[tuple[str, str]]:
        """What is visible now, oldest first: (speaker's words, translation), "" if hidden."""
        out = []
        for source, translation in self._labels:
            words = _plain(source.text()) if source.isVisibleTo(self) else ""
            said = translation.text() if translation.isVisibleTo(self) else ""
            if words or said:
                out.append((words, said))
        return out

    # -- look -----------------------------------------------------------------------------
    @property
    def font_size(self) -> int:
        return self._font_size

    def set_font_size(self, size: int) -> None:
        self._font_size = max(MIN_FONT, min(MAX_FONT, int(size)))
        self._settings.setValue(f"{_GROUP}/fontSize", self._font_size)
        self._apply_look()

    @property
    def opacity(self) -> float:
        return self._opacity

    def set_opacity(self, opacity: float) -> None:
        self._opacity = max(0.1, min(1.0, float(opacity)))
        self._settings.setValue(f"{_GROUP}/opacity", self._opacity)
        self.update()

    @property
    def show_mode(self) -> Show:
        return self._show

    def set_show(self, show: Show) -> None:
        self._show = show if show in SHOWS else "both"
        self._settings.setValue(f"{_GROUP}/show", self._show)
        self._render()

    @property
    def lines(self) -> int:
        return self._lines

    def set_lines(self, lines: int) -> None:
        self._lines = 1 if int(lines) <= 1 else 2
        self._settings.setValue(f"{_GROUP}/lines", self._lines)
        self._render()

    def _apply_look(self) -> None:
        big = self._font_size
        small = max(MIN_FONT, round(big * 0.6))
        # A widget's own style sheet wins over the application's "QWidget {font-size}".
        self.setStyleSheet(
            f"QLabel#overlaySource {{ color: rgba(255, 255, 255, 190); font-size: {small}px; }}"
            f"QLabel#overlayTranslation {{ color: #ffffff; font-size: {big}px;"
            " font-weight: 600; }"
        )

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(16, 18, 26, round(255 * self._opacity)))
        painter.drawRoundedRect(self.rect(), 14, 14)

    # -- click-through --------------------------------------------------------------------
    @property
    def click_through(self) -> bool:
        return self._click_through

    def set_click_through(self, on: bool) -> None:
        if on == self._click_through:
            return
        self._click_through = on
        visible = self.isVisible()
        self.setWindowFlag(Qt.WindowType.WindowTransparentForInput, on)
        if visible:  # changing a window's flags hides it
            self.show()
        self.click_through_changed.emit(on)

    # -- moving, resizing, menu -----------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            handle = self.windowHandle()
            if handle is not None and handle.startSystemMove():
                event.accept()  # the window manager moves it (the only way on Wayland)
                return
            self._drag_from = event.globalPosition().toPoint() - self.pos()
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if self._drag_from is not None and event.buttons() & Qt.MouseButton.LeftButton:
            self.move(event.globalPosition().toPoint() - self._drag_from)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        self._drag_from = None
        super().mouseReleaseEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt override)
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = event.angleDelta().y() // 120 or (1 if event.angleDelta().y() > 0 else -1)
            self.set_font_size(self._font_size + 2 * steps)
            event.accept()
            return
        super().wheelEvent(event)

    def context_menu(self) -> QMenu:
        """The menu a right click opens (built afresh, so it shows the current choices)."""
        menu = QMenu(self)
        fonts = menu.addMenu("Font size")
        fonts.addAction("Larger\tCtrl+wheel up", lambda: self.set_font_size(self._font_size + 4))
        fonts.addAction("Smaller\tCtrl+wheel down", lambda: self.set_font_size(self._font_size - 4))
        fonts.addSeparator()
        _choices(fonts, [(f"{s} px", s) for s in FONT_SIZES], self._font_size, self.set_font_size)
        opacity = menu.addMenu("Background opacity")
        _choices(
            opacity,
            [(f"{round(o * 100)} %", o) for o in OPACITIES],
            self._opacity,
            self.set_opacity,
        )
        show = menu.addMenu("Show")
        _choices(show, [(text, key) for key, text in SHOWS.items()], self._show, self.set_show)
        lines = menu.addMenu("Segments")
        _choices(lines, [("Last one", 1), ("Last two", 2)], self._lines, self.set_lines)
        menu.addSeparator()
        through = menu.addAction("Click-through (undo it from the main window)")
        through.triggered.connect(lambda: self.set_click_through(True))
        menu.addAction("Hide captions", self._close_from_menu)
        return menu

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 (Qt override)
        self.context_menu().exec(event.globalPos())

    def _close_from_menu(self) -> None:
        self.hide()
        self.closed.emit()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._grip.move(self.width() - self._grip.width(), self.height() - self._grip.height())
        self._save_geometry()

    def moveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().moveEvent(event)
        self._save_geometry()

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._save_geometry()
        self._settings.sync()
        super().hideEvent(event)

    # -- settings -------------------------------------------------------------------------
    def _save_geometry(self) -> None:
        self._settings.setValue(f"{_GROUP}/geometry", self.geometry())

    def save(self) -> None:
        """Write the settings out now (they are also written when the overlay hides)."""
        self._save_geometry()
        self._settings.sync()

    def _restore(self) -> None:
        value = self._settings.value
        self._font_size = _number(value(f"{_GROUP}/fontSize"), int, DEFAULT_FONT)
        self._font_size = max(MIN_FONT, min(MAX_FONT, self._font_size))
        self._opacity = max(0.1, min(1.0, _number(value(f"{_GROUP}/opacity"), float, 0.8)))
        show = value(f"{_GROUP}/show")
        self._show = show if show in SHOWS else "both"
        self._lines = 1 if _number(value(f"{_GROUP}/lines"), int, 2) <= 1 else 2
        saved = value(f"{_GROUP}/geometry")
        self.setGeometry(_on_screen(saved if isinstance(saved, QRect) else None))
        self._apply_look()
        self._render()


def default_settings() -> QSettings:
    """The user's window settings: ~/.config/voice-assistant/window.conf on Linux."""
    return QSettings("voice-assistant", "window")


def _on_screen(saved: QRect | None) -> QRect:
    """The saved place if a screen still shows most of it; else bottom centre."""
    screen = QGuiApplication.primaryScreen()
    area = screen.availableGeometry() if screen is not None else QRect(0, 0, 1280, 800)
    if saved is not None and saved.isValid():
        for each in QGuiApplication.screens():
            overlap = each.availableGeometry().intersected(saved)
            if overlap.width() * overlap.height() >= saved.width() * saved.height() // 2:
                return saved
    size = DEFAULT_SIZE.boundedTo(area.size())
    x = area.x() + (area.width() - size.width()) // 2
    y = area.y() + area.height() - size.height() - area.height() // 12
    return QRect(QPoint(x, y), size)


def _number(value, kind, default):
    try:
        return kind(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _choices(menu: QMenu, items, current, choose) -> None:
    group = QActionGroup(menu)
    for text, value in items:
        action = QAction(text, menu, checkable=True)
        action.setChecked(value == current)
        action.triggered.connect(lambda _=False, v=value: choose(v))
        group.addAction(action)
        menu.addAction(action)


def _plain(rich: str) -> str:
    from PySide6.QtGui import QTextDocumentFragment

    return QTextDocumentFragment.fromHtml(rich).toPlainText()
