"""Keeps a scroll area at its newest line, unless the user has scrolled up to read.

Shared by the conversation and the caption list: both grow at the bottom while the user
may be reading further up.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QScrollBar

_SLACK = 4  # pixels from the bottom that still count as at the bottom


class FollowBottom(QObject):
    def __init__(self, bar: QScrollBar) -> None:
        super().__init__(bar)
        self._bar = bar
        self.following = True
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)

    @Slot(int)
    def _on_scrolled(self, value: int) -> None:
        self.following = value >= self._bar.maximum() - _SLACK

    @Slot(int, int)
    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        if self.following:
            self._bar.setValue(maximum)
