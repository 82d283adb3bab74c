"""The Qt desktop window for the voice assistant.

``assistant/`` never imports Qt; everything Qt lives here. The ``voice-assistant``
command starts in ``ui.launcher``, which imports Qt only when the window opens, so the
headless commands run where PySide6 is missing or cannot load.
"""
