"""Starting the desktop app: window first, models in the background, then the assistant.

The window opens at once and shows loading progress; when the models are in, the audio
devices are opened and the assistant starts. A missing microphone or speaker is shown in
the window rather than ending the app: typed questions still work without either (a
microphone that cannot be opened at start is replaced by silence; a speaker that cannot,
or a device lost later, is reported as an ErrorOccurred event while the assistant runs).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

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
from ui.loader import EngineLoader, LoadFunction
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
    """Owns the loader and the assistant behind one window; ``shutdown`` ends both."""

    assistant_started = Signal(object)  # the running Assistant

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
        self._assistant: Assistant | None = None
        self._closing = False

    @property
    def assistant(self) -> Assistant | None:
        return self._assistant

    def start(self) -> None:
        """Begin loading the models; returns at once."""
        self.window.show_loading("starting")
        self._loader.start()

    @Slot(object)
    def _on_loaded(self, engines: Engines) -> None:
        if self._closing:
            return
        # Without a source or sink the assistant still answers typed questions.
        try:
            source = self._source_factory(self.config)
        except Exception as exc:
            self.window.show_error("audio-in", _describe(exc))
            source = _SilentSource(self.config.audio.sample_rate)
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
                silent = _SilentSource(self.config.audio.sample_rate)
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

    def shutdown(self, timeout: float = 10.0, load_timeout: float = 120.0) -> list[str]:
        """Stop the assistant (or wait out a load in progress); returns threads still alive."""
        self._closing = True
        self.window.detach()
        left: list[str] = []
        if self._loader.running and not self._loader.abandon(load_timeout):
            left.append("engine-loader")
        if self._assistant is not None:
            left += self._assistant.shutdown(timeout)
            self._assistant = None
        return left


def _describe(exc: BaseException) -> str:
    """A user-facing error's own words; anything else with its type, for a bug report."""
    if isinstance(exc, UserFacingError):
        return str(exc)
    log.error("unexpected error", exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


class _SilentSource:
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

    window = MainWindow(config)
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
