"""A status line redrawn in place on a terminal, for work that takes a while.

Only a terminal gets it: redirected to a file or a pipe, stderr stays free of ``\\r``
lines, and stdout (the transcript or JSON a script reads) is never written to.
"""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressLine:
    """``update`` redraws one line with ``\\r``; ``done`` clears it. Silent unless
    ``stream`` (stderr by default) is a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        try:
            self.enabled = bool(self.stream.isatty())
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            self.enabled = False
        self._shown = ""

    def update(self, text: str) -> None:
        if not self.enabled or text == self._shown:
            return
        # Spaces over what is left of a longer previous line.
        pad = " " * max(0, len(self._shown) - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._shown = text

    def done(self) -> None:
        """Blank the line and return to its start, so what is printed next starts clean."""
        if self.enabled and self._shown:
            self.stream.write("\r" + " " * len(self._shown) + "\r")
            self.stream.flush()
        self._shown = ""

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc) -> None:
        self.done()


def clock(seconds: float) -> str:
    """``m:ss`` to the nearest second (``h:mm:ss`` from an hour): 75.4 gives "1:15"."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
