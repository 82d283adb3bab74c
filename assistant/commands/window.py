"""Opening the desktop window, or saying plainly why it cannot open here."""

from __future__ import annotations

import os
import sys

HEADLESS_HINT = (
    "headless commands: voice-assistant listen | chat --input Q.wav --output A.wav | "
    "transcribe FILE | say TEXT --output A.wav | doctor"
)


def has_display() -> bool:
    if sys.platform != "linux":
        return True
    if os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal", "vnc")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(config) -> int:
    if not has_display():
        print(
            "voice-assistant: no display found, so the desktop window cannot open.\n"
            + HEADLESS_HINT,
            file=sys.stderr,
        )
        return 2
    try:
        from ui.app import run_app
    except ImportError as exc:
        print(
            f"voice-assistant: the desktop window cannot start ({exc}).\n{HEADLESS_HINT}",
            file=sys.stderr,
        )
        return 2
    return run_app(config)
