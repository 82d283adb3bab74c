"""Loads the models off the GUI thread, so the window paints and responds meanwhile.

``load_engines`` takes from a few seconds to most of a minute (first run converts the
LLM); it runs in a plain daemon thread and reports back through queued signals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from assistant.config import AssistantConfig
from assistant.errors import UserFacingError
from assistant.pipeline.engines import Engines, load_engines

log = logging.getLogger(__name__)

LoadFunction = Callable[..., Engines]
"""``load(config, progress=callback) -> Engines``; ``load_engines`` unless a test swaps it."""


class EngineLoader(QObject):
    """Runs ``load_engines`` in a worker thread; its signals arrive on the GUI thread."""

    progress = Signal(str)  # what is loading now ("loading the voice")
    loaded = Signal(object)  # Engines
    failed = Signal(str)  # a message for the user

    _progress = Signal(str)
    _loaded = Signal(object)
    _failed = Signal(str)

    def __init__(
        self,
        config: AssistantConfig,
        load: LoadFunction = load_engines,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._config = config
        self._load = load
        self._thread: threading.Thread | None = None
        self._abandoned = False
        queued = Qt.ConnectionType.QueuedConnection
        self._progress.connect(self._relay_progress, queued)
        self._loaded.connect(self._relay_loaded, queued)
        self._failed.connect(self._relay_failed, queued)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("EngineLoader.start() called twice")
        self._thread = threading.Thread(target=self._run, name="engine-loader", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def abandon(self, timeout: float | None = None) -> bool:
        """Drop the result and wait for the thread (a load cannot be interrupted).

        Returns True once the thread has ended.
        """
        self._abandoned = True
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _run(self) -> None:
        try:
            engines = self._load(self._config, progress=self._report)
        except UserFacingError as exc:
            self._failed.emit(str(exc))
        except Exception as exc:  # any failure must reach the window, not die in a thread
            log.exception("loading the models failed")
            self._failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self._loaded.emit(engines)

    def _report(self, message: str) -> None:
        self._progress.emit(message)

    @Slot(str)
    def _relay_progress(self, message: str) -> None:
        if not self._abandoned:
            self.progress.emit(message)

    @Slot(object)
    def _relay_loaded(self, engines: Engines) -> None:
        if not self._abandoned:
            self.loaded.emit(engines)

    @Slot(str)
    def _relay_failed(self, message: str) -> None:
        if not self._abandoned:
            self.failed.emit(message)
