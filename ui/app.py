"""Starting the desktop app: window first, models in the background, then the assistant.

The window has two modes. Only one pipeline holds the microphone at a time: choosing
Interpreter shuts the assistant down (in the background); Start there loads the
interpreter's engines (reusing the assistant's Whisper) and starts an ``Interpreter``;
Stop shuts it down, and choosing Assistant again restarts the assistant on its engines.

The window opens at once and shows loading progress; when the models are in, the audio
devices are opened and the assistant starts. A missing microphone or speaker is shown in
the window rather than ending the app: typed questions still work without either (a
microphone that cannot be opened at start is replaced by silence; a speaker that cannot,
or a device lost later, is reported as an ErrorOccurred event while the assistant runs).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from assistant.audio.sinks import AudioSink, NullSink, SpeakerSink
from assistant.audio.sources import AudioSource, MicrophoneSource
from assistant.config import AssistantConfig
from assistant.errors import AudioDeviceError, UserFacingError
from assistant.events import State
from assistant.pipeline import Assistant
from assistant.pipeline.engines import Engines, load_engines
from ui.caption_overlay import default_settings
from ui.loader import (
    EngineLoader,
    InterpreterFactory,
    LoadFunction,
    SilentSource,
    build_interpreter,
    interpreter_source,
    load_interpreter,
    run_job,
)
from ui.main_window import MainWindow

log = logging.getLogger(__name__)

SourceFactory = Callable[[AssistantConfig], AudioSource]
SinkFactory = Callable[[AssistantConfig], AudioSink]

APP_ID = "voice-assistant"  # the desktop file's name and the icon's theme name
_ICON_FILE = Path(__file__).resolve().parent.parent / "resources" / f"{APP_ID}.svg"
_STYLE_FILE = Path(__file__).resolve().with_name("style.qss")
_PARTIALS_ON_GPU_S = 1.0  # partial transcripts cost a transcription each: GPU only


def default_source(config: AssistantConfig) -> AudioSource:
    audio = config.audio
    return MicrophoneSource(audio.input_device, audio.sample_rate, audio.block_ms)


def default_sink(config: AssistantConfig) -> AudioSink:
    return SpeakerSink(config.audio.output_device)


def app_icon() -> QIcon:
    """The installed theme icon, else the SVG from a source checkout."""
    fallback = QIcon(str(_ICON_FILE)) if _ICON_FILE.is_file() else QIcon()
    return QIcon.fromTheme(APP_ID, fallback)


def apply_style(app: QApplication) -> None:
    """Fusion plus the app's style sheet: the same look on every desktop."""
    app.setStyle("Fusion")
    try:
        app.setStyleSheet(_STYLE_FILE.read_text(encoding="utf-8"))
    except OSError:
        log.warning("style sheet %s missing; using the plain style", _STYLE_FILE)


class AppController(QObject):
    """Owns the loaders, the assistant and the interpreter behind one window; ``shutdown``
    ends them all. Background jobs (loading, shutting a pipeline down) run one at a time;
    after each, ``_reconcile`` takes the next step towards what the window asks for."""

    assistant_started = Signal(object)  # the running Assistant
    interpreter_started = Signal(object)  # the running Interpreter

    def __init__(
        self,
        window: MainWindow,
        config: AssistantConfig,
        source_factory: SourceFactory = default_source,
        sink_factory: SinkFactory = default_sink,
        *,
        load: LoadFunction = load_engines,
        partial_every_s: float | None = None,
        parent: QObject | None = None,
        interpreter_source_factory: SourceFactory = interpreter_source,
        load_interpreter: LoadFunction = load_interpreter,
        interpreter_factory: InterpreterFactory = build_interpreter,
    ) -> None:
        super().__init__(parent)
        self.window = window
        self.config = config
        self._source_factory = source_factory
        self._sink_factory = sink_factory
        self._partial_every_s = partial_every_s
        self._loader = EngineLoader(config, load, self)
        self._loader.progress.connect(window.show_loading)
        self._loader.loaded.connect(self._on_loaded)
        self._loader.failed.connect(window.show_load_failed)
        self._loader.failed.connect(self._reconcile)  # the interpreter loads its own Whisper
        self._assistant: Assistant | None = None
        self._engines: Engines | None = None
        self._closing = False
        self._interpreter_source = interpreter_source_factory
        self._load_interpreter = load_interpreter
        self._interpreter_factory = interpreter_factory
        self._interpreter: Any = None
        self._interpreter_engines: Any = None
        self._interpreter_key: Any = None  # the settings those engines were loaded for
        self._want_interpreter = False
        self._task: EngineLoader | None = None  # the background job now running
        self.panel = window.interpreter
        window.mode_changed.connect(self._reconcile)
        self.panel.start_requested.connect(self.start_interpreter)
        self.panel.stop_requested.connect(self.stop_interpreter)

    @property
    def assistant(self) -> Assistant | None:
        return self._assistant

    def start(self) -> None:
        """Begin loading the models; returns at once."""
        self.window.show_loading("starting")
        self._loader.start()

    @property
    def interpreter(self) -> Any:
        return self._interpreter

    @Slot(object)
    def _on_loaded(self, engines: Engines) -> None:
        if self._closing:
            return
        self._engines = engines
        self._reconcile()

    def _start_assistant(self, engines: Engines) -> None:
        # Without a source or sink the assistant still answers typed questions.
        try:
            source = self._source_factory(self.config)
        except Exception as exc:
            self.window.show_error("audio-in", _describe(exc))
            source = SilentSource(self.config.audio.sample_rate)
        try:
            sink = self._sink_factory(self.config)
        except Exception as exc:
            self.window.show_error("audio-out", f"{_describe(exc)} Replies are shown as text only.")
            sink = NullSink()
        self._start(engines, source, sink)

    def _start(self, engines: Engines, source: AudioSource, sink: AudioSink) -> None:
        partial = self._partial_every_s
        if partial is None:
            on_gpu = getattr(engines.recognizer, "device", "cpu") == "cuda"
            partial = _PARTIALS_ON_GPU_S if on_gpu else 0.0
        try:
            try:
                assistant = self._launch(engines, source, sink, partial)
            except AudioDeviceError as exc:
                # The microphone cannot be opened: say so, and answer typed questions.
                self.window.show_error("audio-in", _describe(exc))
                silent = SilentSource(self.config.audio.sample_rate)
                assistant = self._launch(engines, silent, sink, partial)
        except Exception as exc:  # the window must stay up to say what went wrong
            self.window.show_error("start", _describe(exc), fatal=True)
            self.window.status.set_state(State.STOPPED, "the assistant could not start")
            return
        self._assistant = assistant
        self.assistant_started.emit(assistant)

    def _launch(
        self, engines: Engines, source: AudioSource, sink: AudioSink, partial: float
    ) -> Assistant:
        """A started assistant on ``source``; one that fails to start is shut down."""
        assistant = Assistant(self.config, engines, source, sink, partial_every_s=partial)
        self.window.attach(assistant)
        try:
            # The source is opened first: one that fails raises AudioDeviceError before
            # anything runs. A speaker that fails, or a microphone lost later, arrives as
            # an ErrorOccurred event instead.
            assistant.start()
        except BaseException:
            self.window.detach()
            assistant.shutdown()
            raise
        return assistant

    # -- modes ---------------------------------------------------------------------------
    @Slot()
    def start_interpreter(self) -> None:
        """The panel's Start: its choices are in ``config.interpret`` already."""
        self._want_interpreter = True
        self._reconcile()

    @Slot()
    def stop_interpreter(self) -> None:
        """The panel's Stop; a load under way goes on, its engines kept for the next Start."""
        self._want_interpreter = False
        if self._interpreter is None:
            self.panel.set_running(False, "stopped")
        self._reconcile()

    def _progress(self, message: str) -> None:
        if self._want_interpreter:
            self.panel.show_loading(message)

    @Slot()
    def _reconcile(self) -> None:
        """One step towards the chosen mode; called again when each background job ends."""
        if self._closing or self._task is not None:
            return
        panel = self.panel
        if self.window.mode == "assistant":
            self._want_interpreter = False
            if self._interpreter is not None:
                self._stop_interpreter_now()
            elif self._assistant is None and self._engines is not None:
                self.window.show_loading("starting the assistant")
                self._start_assistant(self._engines)
            return
        if self._assistant is not None:  # it holds the microphone
            assistant, self._assistant = self._assistant, None
            self.window.detach()
            self.window.status.set_state(State.STOPPED, "paused while interpreting")
            self._background("stopping the assistant", lambda _: assistant.shutdown())
        elif not self._want_interpreter:
            if self._interpreter is not None:
                self._stop_interpreter_now()
        elif self._interpreter is None:
            if self._loader.running:
                panel.show_loading("waiting for speech recognition to load")
            elif self._interpreter_key != self._settings_key():
                self._load_interpreter_engines()
            else:
                self._launch_interpreter()

    def _settings_key(self) -> Any:
        # The engines depend on the languages and translator, not on the input or speak.
        return dataclasses.replace(self.config.interpret, input="", speak=True)

    def _load_interpreter_engines(self) -> None:
        key, old, mine = self._settings_key(), self._interpreter_engines, self._engines
        self._interpreter_engines = self._interpreter_key = None

        def load(progress: Callable[[str], None]) -> Any:
            if old is not None and hasattr(old, "close"):
                old.close()  # the translator of the last settings
            return self._load_interpreter(
                self.config,
                progress=progress,
                recognizer=mine.recognizer if mine is not None else None,  # one Whisper
                voice=mine.tts if mine is not None else None,
            )

        def loaded(engines: Any) -> None:
            self._interpreter_engines, self._interpreter_key = engines, key

        self._background("loading the interpreter", load, loaded)

    def _launch_interpreter(self) -> None:
        """Build the interpreter, then start it, each off the GUI thread (its VAD model and
        cancellers load, and opening the system audio waits on a recorder process); the
        panel follows it from before it starts, so no caption or state is missed."""
        panel, config, engines = self.panel, self.config, self._interpreter_engines
        try:
            source = self._interpreter_source(config)
        except Exception as exc:
            self._interpreter_failed("audio-in", exc)
            return
        try:
            sink = self._sink_factory(config)
        except Exception as exc:
            panel.show_error("audio-out", f"{_describe(exc)} Translations are shown only.")
            sink = NullSink()

        def build(_progress) -> Any:
            try:
                return self._interpreter_factory(config, engines, source, sink)
            except Exception as exc:
                source.close()
                sink.close()
                return exc

        def built(interpreter: Any) -> None:
            if isinstance(interpreter, Exception):
                self._interpreter_failed("start", interpreter)
                return
            panel.attach(interpreter)
            self._background("starting the interpreter", start(interpreter), started(interpreter))

        def start(interpreter: Any):
            def job(_progress) -> Exception | None:
                try:
                    interpreter.start()
                except Exception as exc:  # the window stays up to say what went wrong
                    interpreter.shutdown()
                    return exc
                return None

            return job

        def started(interpreter: Any):
            def done(error: Exception | None) -> None:
                if error is not None:
                    panel.detach()
                    stage = "audio-in" if isinstance(error, AudioDeviceError) else "start"
                    self._interpreter_failed(stage, error)
                    return
                self._interpreter = interpreter
                self.interpreter_started.emit(interpreter)

            return done

        self._background("preparing the interpreter", build, built)

    def _interpreter_failed(self, stage: str, exc: BaseException) -> None:
        self._want_interpreter = False
        self.panel.show_error(stage, _describe(exc))
        self.panel.set_running(False, "the interpreter could not start")

    def _stop_interpreter_now(self) -> None:
        interpreter, self._interpreter = self._interpreter, None
        self.panel.detach()
        self._background(
            "stopping the interpreter",
            lambda _: interpreter.shutdown(),
            lambda _: None if self._want_interpreter else self.panel.set_running(False, "stopped"),
        )

    def _background(
        self, what: str, job: Callable[[Callable[[str], None]], Any], done=None
    ) -> None:
        """Run ``job(progress)`` off the GUI thread, then ``done(result)`` and reconcile."""
        self._progress(what)

        def finished(result: Any) -> None:
            self._task = None
            if isinstance(result, list) and result:  # a shutdown that left threads behind
                log.warning("%s: threads still running: %s", what, ", ".join(result))
            if done is not None:
                done(result)
            self._reconcile()

        def failed(message: str) -> None:
            self._task, self._want_interpreter = None, False
            self.panel.show_error("interpret", message)
            self.panel.set_running(False, f"{what} failed")
            self._reconcile()

        self._task = run_job(self, job, finished, failed, self._progress)

    def shutdown(self, timeout: float = 10.0, load_timeout: float = 120.0) -> list[str]:
        """Stop the pipelines (or wait out a load in progress); returns threads still alive."""
        self._closing = True
        self.window.detach()
        self.panel.detach()
        left: list[str] = []
        if self._loader.running and not self._loader.abandon(load_timeout):
            left.append("engine-loader")
        if self._task is not None and not self._task.abandon(load_timeout):
            left.append("interpreter-task")
        self._task = None
        if self._assistant is not None:
            left += self._assistant.shutdown(timeout)
            self._assistant = None
        if self._interpreter is not None:
            left += self._interpreter.shutdown(timeout)
            self._interpreter = None
        return left


def _describe(exc: BaseException) -> str:
    """A user-facing error's own words; anything else with its type, for a bug report."""
    if isinstance(exc, UserFacingError):
        return str(exc)
    log.error("unexpected error", exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


def run_app(
    config: AssistantConfig | None = None,
    source_factory: SourceFactory | None = None,
    sink_factory: SinkFactory | None = None,
    *,
    argv: Sequence[str] | None = None,
) -> int:
    """Run the window until it is closed; returns the exit status.

    ``source_factory(config)`` and ``sink_factory(config)`` build the audio ends once the
    models are loaded; by default the microphone and speaker named in ``config.audio``.
    """
    config = config or AssistantConfig()
    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_ID)
    app.setApplicationDisplayName("Voice Assistant")
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
    apply_style(app)

    window = MainWindow(config, settings=default_settings())
    controller = AppController(
        window, config, source_factory or default_source, sink_factory or default_sink
    )
    window.show()
    controller.start()
    restore = _quit_on_sigint(app)
    try:
        status = app.exec()
    finally:
        restore()
        window.interpreter.close_overlay()  # writes its place and size out
        window.hide()
        left = controller.shutdown()
        if left:
            log.warning("threads still running at exit: %s", ", ".join(left))
    return status


ALREADY_RUNNING_TITLE = "Voice Assistant is already running"


def show_already_running(message: str) -> None:
    """Tell someone who started the app from a menu, not a terminal, why no window opens."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setWindowIcon(app_icon())
    QMessageBox.critical(None, ALREADY_RUNNING_TITLE, message)


def _quit_on_sigint(app: QApplication) -> Callable[[], None]:
    """Ctrl+C in the terminal closes the app cleanly instead of being ignored by Qt."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, lambda *_: app.quit())
    ticker = QTimer()
    ticker.start(200)  # Python runs signal handlers only when it gets control back
    ticker.timeout.connect(lambda: None)

    def restore() -> None:
        ticker.stop()
        signal.signal(signal.SIGINT, previous)

    return restore
