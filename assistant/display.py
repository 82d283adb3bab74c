"""Whether a desktop window can open here, and what to run instead when it cannot.

No Qt in here: ``doctor`` reports the display and the command line names the headless
commands without loading the UI.
"""

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
