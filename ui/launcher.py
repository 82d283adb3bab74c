"""The ``voice-assistant`` command: the engine's command line with the desktop window in.

``assistant/`` is the engine and never imports the UI or Qt, so the window is handed to
``assistant.cli.main`` as a function, and Qt is imported only when it opens: the
headless commands start without Qt and run where PySide6 is missing or cannot load.
"""

from __future__ import annotations

import sys

from assistant import cli
from assistant.config import AssistantConfig
from assistant.display import HEADLESS_HINT, has_display


def open_window(config: AssistantConfig) -> int:
    """Open the desktop window, or say in one line why it cannot open here (exit 2)."""
    if not has_display():
        print(
            "voice-assistant: no display found, so the desktop window cannot open.\n"
            + HEADLESS_HINT,
            file=sys.stderr,
        )
        return cli.EXIT_USER_ERROR
    try:
        from ui.app import run_app
    except ImportError as exc:  # PySide6 missing, or its system libraries
        print(
            f"voice-assistant: the desktop window cannot start ({exc}).\n{HEADLESS_HINT}",
            file=sys.stderr,
        )
        return cli.EXIT_USER_ERROR
    return run_app(config)


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, open_window=open_window)
