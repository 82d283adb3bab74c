"""The Qt desktop window for the voice assistant.

``assistant/`` never imports Qt; everything Qt lives here. Entry point: ``run_app``.
"""

from ui.app import run_app

__all__ = ["run_app"]
