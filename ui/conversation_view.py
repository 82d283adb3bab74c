"""The conversation: one row per user question and per assistant reply, keyed by turn.

Rows are keyed by the engine's turn number because events of one turn arrive in pieces
(a placeholder when speech starts, partial transcripts, the final transcript, reply
tokens) and a newer turn may start before an older one has finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from PySide6.QtCore import QSize, Qt, Slot
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ui.follow_bottom import FollowBottom

Role = Literal["user", "assistant"]

_BUBBLE_SHARE = 0.78  # widest a bubble may get, as a share of the visible width
_LISTENING_PLACEHOLDER = "Listening…"
_INTERRUPTED_NOTE = " — interrupted"


class Bubble(QLabel):
    """A word-wrapped message whose width follows its text, up to a maximum."""

    def __init__(self, role: Role, text: str = "", partial: bool = False) -> None:
        super().__init__()
        self.setObjectName("bubble")
        self.setTextFormat(Qt.TextFormat.PlainText)  # model output is not markup
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Minimum)
        self.setIndent(0)  # padding comes from the style sheet alone
        self.setProperty("role", role)
        self.role: Role = role
        self._hint_key: tuple[str, int, str] | None = None
        self._hint = QSize()
        self.set_partial(partial)
        self.setText(text)

    def set_partial(self, partial: bool) -> None:
        self.setProperty("partial", partial)
        self._repolish()

    def set_interrupted(self, interrupted: bool) -> None:
        self.setProperty("interrupted", interrupted)
        self._repolish()

    @property
    def partial(self) -> bool:
        return bool(self.property("partial"))

    def _repolish(self) -> None:
        self._hint_key = None  # padding and font may change with the properties
        self.style().unpolish(self)
        self.style().polish(self)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        # QLabel's own hint for wrapped text is a fixed guess; a bubble should be as narrow
        # as its text allows without adding lines, like in a chat app.
        key = (self.text(), self.maximumWidth(), self.font().key())
        if self._hint_key != key:
            self._hint_key, self._hint = key, self._tightest_size()
        return self._hint

    def _tightest_size(self) -> QSize:
        widest = self.maximumWidth()
        margins = self.contentsMargins()
        chrome = margins.left() + margins.right() + 2
        metrics = self.fontMetrics()
        words = self.text().split() or [""]
        # Never narrower than the longest word: QLabel cannot break inside one, so
        # heightForWidth would not grow and the word would be clipped.
        low = min(widest, max(metrics.horizontalAdvance(word) for word in words) + chrome)
        high = widest
        lines_at_widest = self.heightForWidth(widest)
        while low < high:  # smallest width that needs no more height than the widest one
            mid = (low + high) // 2
            if self.heightForWidth(mid) <= lines_at_widest:
                high = mid
            else:
                low = mid + 1
        return QSize(low, self.heightForWidth(low))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        hint = self.sizeHint()
        return QSize(min(hint.width(), 48), hint.height())


@dataclass
class _Row:
    widget: QWidget
    bubble: Bubble
    text: str = ""
    finished: bool = False


class ConversationView(QScrollArea):
    """A scrolling column of chat bubbles that sticks to the bottom as it grows."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("conversation")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a focus home where Space talks

        canvas = QWidget()
        canvas.setObjectName("conversationCanvas")
        self._column = QVBoxLayout(canvas)
        self._column.setContentsMargins(20, 18, 20, 18)
        self._column.setSpacing(10)
        self._empty = QLabel()
        self._empty.setObjectName("emptyHint")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self._column.addStretch(1)
        self._column.addWidget(self._empty)
        self._column.addStretch(1)
        self.setWidget(canvas)

        self._users: dict[int, _Row] = {}
        self._replies: dict[int, _Row] = {}
        self._order: list[tuple[Role, int]] = []
        bar = self.verticalScrollBar()
        self._follow = FollowBottom(bar)

    # -- what the window calls ------------------------------------------------------------
    @Slot(int)
    def begin_user(self, turn: int) -> None:
        """The user started speaking: show a greyed placeholder until words arrive."""
        if turn not in self._users:
            self._add(self._users, "user", turn, _LISTENING_PLACEHOLDER, partial=True)

    @Slot(int, str)
    def show_partial(self, turn: int, text: str) -> None:
        row = self._users.get(turn)
        if row is None:
            row = self._add(self._users, "user", turn, text, partial=True)
        elif row.finished:
            return  # a late partial must not overwrite the final transcript
        row.text = text
        row.bubble.setText(text)

    @Slot(int, str)
    def set_user(self, turn: int, text: str) -> None:
        row = self._users.get(turn) or self._add(self._users, "user", turn, text, partial=False)
        row.text, row.finished = text, True
        row.bubble.setText(text)
        row.bubble.set_partial(False)

    @Slot(int)
    def drop_user(self, turn: int) -> None:
        """Nothing was understood: remove the placeholder instead of leaving noise behind."""
        row = self._users.pop(turn, None)
        if row is not None:
            self._order.remove(("user", turn))
            row.widget.deleteLater()
            self._update_empty()

    @Slot(int, str)
    def append_reply(self, turn: int, text: str) -> None:
        row = self._replies.get(turn) or self._add(self._replies, "assistant", turn, "")
        if row.finished:
            return
        row.text += text
        row.bubble.setText(row.text.lstrip())

    @Slot(int, str, bool)
    def finish_reply(self, turn: int, text: str, cancelled: bool) -> None:
        row = self._replies.get(turn)
        if row is None:
            if not text:
                return  # cancelled before the first token: nothing to show
            row = self._add(self._replies, "assistant", turn, "")
        row.text, row.finished = text, True
        row.bubble.setText(text + (_INTERRUPTED_NOTE if cancelled else ""))
        row.bubble.set_interrupted(cancelled)

    @Slot(int)
    def mark_interrupted(self, turn: int) -> None:
        row = self._replies.get(turn)
        if row is not None and not row.bubble.property("interrupted"):
            row.bubble.setText(row.text.strip() + _INTERRUPTED_NOTE)
            row.bubble.set_interrupted(True)
        user = self._users.get(turn)
        if user is not None and not user.finished:
            self.drop_user(turn)

    def set_hint(self, text: str) -> None:
        """What the empty conversation suggests doing (depends on the listening mode)."""
        self._empty.setText(text)

    def hint(self) -> str:
        return self._empty.text()

    def clear(self) -> None:
        for rows in (self._users, self._replies):
            for row in rows.values():
                row.widget.deleteLater()
            rows.clear()
        self._order.clear()
        self._update_empty()

    # -- what tests and other code read ----------------------------------------------------
    def messages(self) -> list[tuple[Role, str]]:
        """The shown conversation, in display order: (role, text as displayed)."""
        out: list[tuple[Role, str]] = []
        for role, turn in self._order:
            row = (self._users if role == "user" else self._replies)[turn]
            out.append((role, row.bubble.text()))
        return out

    def user_text(self, turn: int) -> str | None:
        row = self._users.get(turn)
        return row.bubble.text() if row else None

    def reply_text(self, turn: int) -> str | None:
        row = self._replies.get(turn)
        return row.bubble.text() if row else None

    def is_partial(self, turn: int) -> bool:
        row = self._users.get(turn)
        return bool(row and row.bubble.partial)

    def reply_finished(self, turn: int) -> bool:
        row = self._replies.get(turn)
        return bool(row and row.finished)

    # -- layout ---------------------------------------------------------------------------
    def _add(
        self, rows: dict[int, _Row], role: Role, turn: int, text: str, partial: bool = False
    ) -> _Row:
        bubble = Bubble(role, text, partial)
        bubble.setMaximumWidth(self._bubble_width())
        speaker = QLabel("You" if role == "user" else "Assistant")
        speaker.setObjectName("speakerLabel")
        row_widget = QWidget()
        column = QVBoxLayout(row_widget)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(3)
        line = QHBoxLayout()
        line.setContentsMargins(0, 0, 0, 0)
        align = Qt.AlignmentFlag.AlignRight if role == "user" else Qt.AlignmentFlag.AlignLeft
        if role == "user":
            line.addStretch(1)
        line.addWidget(bubble)
        if role == "assistant":
            line.addStretch(1)
        column.addWidget(speaker, 0, align)
        column.addLayout(line)

        row = _Row(row_widget, bubble, text)
        rows[turn] = row
        self._insert(role, turn, row_widget)
        self._update_empty()
        return row

    def _insert(self, role: Role, turn: int, widget: QWidget) -> None:
        """Place by turn, the question before its reply, whatever order events came in."""
        key = (turn, 0 if role == "user" else 1)
        index = len(self._order)
        for i, (r, t) in enumerate(self._order):
            if (t, 0 if r == "user" else 1) > key:
                index = i
                break
        self._order.insert(index, (role, turn))
        # Layout: [stretch, empty hint, stretch, rows...]; keep the rows after the stretches.
        self._column.insertWidget(3 + index, widget)

    def _update_empty(self) -> None:
        empty = not self._order
        self._empty.setVisible(empty)
        # With messages, the top stretch pushes them to the bottom like a chat app.
        self._column.setStretch(2, 1 if empty else 0)

    def _bubble_width(self) -> int:
        return max(160, int(self.viewport().width() * _BUBBLE_SHARE))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        width = self._bubble_width()
        for rows in (self._users, self._replies):
            for row in rows.values():
                row.bubble.setMaximumWidth(width)
                row.bubble.updateGeometry()
