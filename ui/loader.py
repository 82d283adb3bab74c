"""Loads the models off the GUI thread, so the window paints and responds meanwhile.

``load_engines`` takes from a few seconds to most of a minute (first run converts the
LLM); it runs in a plain daemon thread and reports back through queued signals. The same
loader runs the app's other slow jobs (the interpreter's engines, a pipeline's shutdown).
The interpreter's parts are imported only when first used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from assistant.audio.sinks import AudioSink
from assistant.audio.sources import AudioSource, MicrophoneSource
from assistant.config import AssistantConfig
from assistant.errors import UserFacingError
from assistant.pipeline.engines import Engines, load_engines

log = logging.getLogger(__name__)

LoadFunction = Callable[..., Any]
"""``load(config, progress=callback) -> Engines``; ``load_engines`` unless a test swaps it."""
# (config, engines, source, sink) -> a stopped Interpreter
InterpreterFactory = Callable[[AssistantConfig, Any, AudioSource, AudioSink], Any]


def interpreter_source(config: AssistantConfig) -> AudioSource:
    """``config.interpret.input``: the microphone, what this computer plays, or a device."""
    audio, spec = config.audio, config.interpret.input
    if spec == "mic":
        return MicrophoneSource(audio.input_device, audio.sample_rate, audio.block_ms)
    from assistant.audio.monitor import input_source

    return input_source(spec, audio.sample_rate, audio.block_ms)


def load_interpreter(
    config: AssistantConfig, progress: Callable[[str], None], recognizer=None, voice=None
):
    """The translator and voice; the assistant's Whisper and voice are reused when given."""
    from assistant.interpret.engines import load_interpreter_engines

    return load_interpreter_engines(
        config, progress=progress, recognizer=recognizer, loaded_voice=voice
    )


def build_interpreter(config: AssistantConfig, engines, source: AudioSource, sink: AudioSink):
    from assistant.pipeline.modes.interpreter import Interpreter

    return Interpreter(config, engines, source, sink)


class EngineLoader(QObject):
    """Runs ``load_engines`` in a worker thread; its signals arrive on the GUI thread."""

    progress = Signal(str)  # what is loading now ("loading the voice")
    loaded = Signal(object)  # Engines (or what the load function returned)
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


def run_job(
    parent: QObject,
    job: Callable[[Callable[[str], None]], Any],
    done: Callable[[Any], None],
    failed: Callable[[str], None],
    progress: Callable[[str], None] | None = None,
) -> EngineLoader:
    """Start ``job(progress)`` in a worker thread; ``done(result)`` or ``failed(message)``
    then runs on the GUI thread. ``abandon`` the returned loader to drop the result."""
    task = EngineLoader(AssistantConfig(), lambda _config, progress: job(progress), parent)
    if progress is not None:
        task.progress.connect(progress)
    task.loaded.connect(done)
    task.failed.connect(failed)
    task.start()
    return task


class SilentSource:
    """Used when no source could be built or opened: the assistant runs on typed questions."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._closed = threading.Event()

    def start(self) -> None:
        pass

    def read(self, timeout: float) -> None:
        self._closed.wait(timeout)
        return None

    def close(self) -> None:
        self._closed.set()
