"""The interpreter's captions: one row per segment, the speaker's words and their
translation beneath, newest at the bottom.

A segment's source caption arrives many times while it is spoken: ``confirmed`` text (two
decodes agreed on it) is shown in the normal colour and is never rewritten; the
``tentative`` rest is grey and italic and is replaced by each update. The translation
arrives once the segment has closed. Only the newest ``MAX_ROWS`` segments are kept as
widgets (the full session stays in the interpreter's ``CaptionRecord`` for export), so a
long session does not slow the window down.
"""

from __future__ import annotations

import bisect
import html
import logging
from dataclasses import dataclass

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from assistant.events import SourceCaption, TranslatedCaption
from assistant.interpret.languages import has_cjk, language_name, unspaced
from ui.follow_bottom import FollowBottom

log = logging.getLogger(__name__)

MAX_ROWS = 300
_EMPTY_HINT = "Captions appear here as people speak."
TENTATIVE_COLOUR = "#8a90a0"


def join_caption(confirmed: str, tentative: str, language: str = "") -> str:
    """The two parts as one line: a space between them unless the language is written
    without spaces (Chinese, Japanese, ...), either side is CJK, or one is already there."""
    if not confirmed or not tentative:
        return confirmed + tentative
    if confirmed[-1].isspace() or tentative[0].isspace():
        return confirmed + tentative
    if unspaced(language) or has_cjk(confirmed[-1]) or has_cjk(tentative[0]):
        return confirmed + tentative
    if tentative[0] in ".,;:!?%)]}":
        return confirmed + tentative
    return f"{confirmed} {tentative}"


def caption_html(confirmed: str, tentative: str, language: str = "") -> str:
    """Rich text for a label: confirmed plain, tentative grey and italic."""
    joined = join_caption(confirmed, tentative, language)
    head = html.escape(joined[: len(joined) - len(tentative)])
    if not tentative:
        return head
    tail = html.escape(tentative)
    return f'{head}<span style="color:{TENTATIVE_COLOUR}; font-style:italic">{tail}</span>'


def format_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class _Segment:
    widget: QFrame
    meta: QLabel
    source: QLabel
    translation: QLabel
    confirmed: str = ""
    tentative: str = ""
    language: str = ""
    translated: str = ""
    final: bool = False


class CaptionView(QScrollArea):
    """Follows ``SourceCaption`` and ``TranslatedCaption`` events (connect them to
    ``show_source`` and ``show_translation``); scrolls with new captions unless the user
    has scrolled up to read."""

    def __init__(self, parent: QWidget | None = None, *, max_rows: int = MAX_ROWS) -> None:
        super().__init__(parent)
        self.setObjectName("captionView")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._max_rows = max_rows
        self._rows: dict[int, _Segment] = {}
        self._order: list[int] = []  # segment numbers, ascending
        self._dropped_upto = -1  # segments at or below this were dropped for the cap

        canvas = QWidget()
        canvas.setObjectName("captionCanvas")
        self._column = QVBoxLayout(canvas)
        self._column.setContentsMargins(16, 12, 16, 12)
        self._column.setSpacing(8)
        self._empty = QLabel(_EMPTY_HINT)
        self._empty.setObjectName("emptyHint")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self._column.addStretch(1)
        self._column.addWidget(self._empty)
        self._column.addStretch(1)
        self.setWidget(canvas)
        bar = self.verticalScrollBar()
        self._follow = FollowBottom(bar)

    # -- events ---------------------------------------------------------------------------
    @Slot(object)
    def show_source(self, event: SourceCaption) -> None:
        row = self._row(event.segment, event.start)
        if row is None:
            return
        if event.confirmed.startswith(row.confirmed):
            row.confirmed = event.confirmed
        else:  # confirmed text only grows: a shown word never changes under the reader
            log.debug("segment %d: confirmed text rewritten; kept as shown", event.segment)
        row.tentative = "" if event.final else event.tentative
        row.final = row.final or event.final
        row.language = event.language or row.language
        self._render_source(row)
        self._render_meta(row, event.start)

    @Slot(object)
    def show_translation(self, event: TranslatedCaption) -> None:
        row = self._row(event.segment, event.start)
        if row is None:
            return
        if not row.confirmed and not row.tentative and event.source:
            row.confirmed, row.language = event.source, event.source_language
            self._render_source(row)
        row.final = True
        row.translated = event.text
        row.translation.setText(event.text)
        # a segment already in the target language is not shown twice
        row.translation.setVisible(bool(event.text) and event.text != event.source)
        self._render_meta(row, event.start)

    @Slot()
    def clear(self) -> None:
        for number in list(self._order):
            self._remove(number)
        self._dropped_upto = -1
        self._update_empty()

    # -- queries (tests, export preview) --------------------------------------------------
    def segments(self) -> list[int]:
        return list(self._order)

    def row_count(self) -> int:
        return len(self._order)

    def confirmed_text(self, segment: int) -> str | None:
        row = self._rows.get(segment)
        return row.confirmed if row else None

    def tentative_text(self, segment: int) -> str | None:
        row = self._rows.get(segment)
        return row.tentative if row else None

    def source_text(self, segment: int) -> str | None:
        """The source line as the reader sees it (confirmed and tentative joined)."""
        row = self._rows.get(segment)
        return join_caption(row.confirmed, row.tentative, row.language) if row else None

    def translation_text(self, segment: int) -> str | None:
        row = self._rows.get(segment)
        return row.translated if row else None

    def row_widget(self, segment: int) -> QFrame | None:
        row = self._rows.get(segment)
        return row.widget if row else None

    # -- rows -----------------------------------------------------------------------------
    def _row(self, segment: int, start: float) -> _Segment | None:
        row = self._rows.get(segment)
        if row is not None:
            return row
        if segment <= self._dropped_upto:
            return None  # scrolled out of the kept rows long ago
        row = self._add(segment)
        self._render_meta(row, start)
        while len(self._order) > self._max_rows:
            oldest = self._order[0]
            self._dropped_upto = max(self._dropped_upto, oldest)
            self._remove(oldest)
        return row

    def _add(self, segment: int) -> _Segment:
        widget = QFrame()
        widget.setObjectName("captionRow")
        column = QVBoxLayout(widget)
        column.setContentsMargins(14, 8, 14, 10)
        column.setSpacing(3)
        meta = QLabel()
        meta.setObjectName("captionMeta")
        source = QLabel()
        source.setObjectName("captionSource")
        source.setTextFormat(Qt.TextFormat.RichText)  # escaped: recognised speech is no markup
        translation = QLabel()
        translation.setObjectName("captionTranslation")
        translation.setTextFormat(Qt.TextFormat.PlainText)
        translation.hide()
        for label in (source, translation):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addWidget(meta)
        column.addWidget(source)
        column.addWidget(translation)
        row = _Segment(widget, meta, source, translation)
        index = bisect.bisect(self._order, segment)
        self._order.insert(index, segment)
        self._rows[segment] = row
        # Layout: [stretch, empty hint, stretch, rows...]
        self._column.insertWidget(3 + index, widget)
        self._update_empty()
        return row

    def _remove(self, segment: int) -> None:
        row = self._rows.pop(segment)
        self._order.remove(segment)
        self._column.removeWidget(row.widget)
        row.widget.hide()
        row.widget.deleteLater()

    def _render_source(self, row: _Segment) -> None:
        row.source.setText(caption_html(row.confirmed, row.tentative, row.language))

    def _render_meta(self, row: _Segment, start: float) -> None:
        parts = [format_time(start)]
        if row.language:
            parts.append(language_name(row.language))
        if not row.final:
            parts.append("speaking…")
        row.meta.setText("  ·  ".join(parts))

    def _update_empty(self) -> None:
        empty = not self._order
        self._empty.setVisible(empty)
        self._column.setStretch(2, 1 if empty else 0)

    # -- scrolling ------------------------------------------------------------------------

    @property
    def following(self) -> bool:
        """True while new captions scroll into view (the user has not scrolled up)."""
        return self._follow.following
