"""The ``voice-assistant`` command: the engine's command line with the desktop window in.

``assistant/`` is the engine and never imports the UI or Qt, so the window is handed to
``assistant.cli.main`` as a function, and Qt is imported only when it opens: the
headless commands start without Qt and run where PySide6 is missing or cannot load.
"""

from __future__ import annotations

import os
import sys

from assistant import cli
from assistant.config import AssistantConfig
from assistant.display import HEADLESS_HINT, has_display
from assistant.instance_lock import SecondInstanceError, live_session


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
    return cli.main(argv, open_window=open_only_window)


def open_only_window(config: AssistantConfig, allow_second: bool = False) -> int:
    """``open_window`` while holding the live-session lock (one live assistant per user).

    Refused, it says who holds the lock on stderr, and in a message box where there is a
    screen to show one on (started from a menu, there is no terminal to read), exit 2."""
    try:
        with live_session("window", allow_second=allow_second):
            return open_window(config)
    except SecondInstanceError as exc:
        print(f"voice-assistant: error: {exc}", file=sys.stderr)
        if can_show_dialog():
            show_refusal(str(exc))
        return cli.EXIT_USER_ERROR


def can_show_dialog() -> bool:
    """A display a person looks at: not Qt's offscreen or minimal platforms (tests, CI)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    return has_display() and not platform.startswith(("offscreen", "minimal"))


def show_refusal(message: str) -> None:
    try:
        from ui.app import show_already_running
    except ImportError:  # no Qt: the line on stderr is all there is
        return
    show_already_running(message)
