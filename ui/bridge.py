"""Carries engine events from the assistant's (or interpreter's) worker threads onto the
GUI thread.

The assistant calls its subscribers from whichever worker produced an event; Qt widgets
may only be touched from the GUI thread. ``EngineBridge.post`` is safe to call from any
thread: it emits a private signal that is connected with an explicit queued connection,
so every public signal of the bridge is emitted on the thread the bridge lives on (the
GUI thread), whatever a receiver is (a widget slot, a lambda or a plain function).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal, Slot

from assistant.events import (
    AudioFinished,
    AudioStarted,
    DeviceRestored,
    ErrorOccurred,
    Event,
    FinalTranscript,
    NothingHeard,
    PartialTranscript,
    Ready,
    ReplyFinished,
    ReplyToken,
    SourceCaption,
    SpeechStarted,
    StateChanged,
    TranslatedCaption,
    TurnCancelled,
    TurnTimings,
)


class EngineBridge(QObject):
    """Re-emits each engine ``Event`` on the GUI thread, plus typed convenience signals."""

    event = Signal(object)  # every Event, in the order the workers published them
    ready = Signal()
    state_changed = Signal(object)  # State
    speech_started = Signal(int)  # turn
    partial_transcript = Signal(int, str)  # turn, text so far
    final_transcript = Signal(int, str)  # turn, text
    nothing_heard = Signal(int, str)  # turn, reason
    reply_token = Signal(int, str)  # turn, new text
    reply_finished = Signal(int, str, bool)  # turn, full text, cancelled
    turn_cancelled = Signal(int, str)  # turn, reason
    timings = Signal(int, object)  # turn, dict[str, float | None] in ms
    error = Signal(str, str, bool)  # stage, message, fatal
    device_restored = Signal(str)  # stage whose error is over
    # The interpreter's events (the events themselves: they carry many fields).
    source_caption = Signal(object)  # SourceCaption
    translated_caption = Signal(object)  # TranslatedCaption
    audio_started = Signal(int)  # turn
    audio_finished = Signal(int, bool)  # turn, interrupted

    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._closed = False
        # Explicitly queued: even a post from the GUI thread itself (Assistant.ask emits
        # synchronously) is delivered from the event loop, so ordering stays uniform.
        self._posted.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)

    def post(self, event: Event) -> None:
        """Hand over one event; callable from any thread (an ``Assistant`` subscriber)."""
        if not self._closed:
            self._posted.emit(event)

    def close(self) -> None:
        """Stop forwarding: events posted later (e.g. during shutdown) are dropped."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    @Slot(object)
    def _dispatch(self, event: Event) -> None:
        if self._closed:
            return
        self.event.emit(event)
        match event:
            case Ready():
                self.ready.emit()
            case StateChanged(state=state):
                self.state_changed.emit(state)
            case SpeechStarted(turn=turn):
                self.speech_started.emit(turn)
            case PartialTranscript(turn=turn, text=text):
                self.partial_transcript.emit(turn, text)
            case FinalTranscript(turn=turn, text=text):
                self.final_transcript.emit(turn, text)
            case NothingHeard(turn=turn, reason=reason):
                self.nothing_heard.emit(turn, reason)
            case ReplyToken(turn=turn, text=text):
                self.reply_token.emit(turn, text)
            case ReplyFinished(turn=turn, text=text, cancelled=cancelled):
                self.reply_finished.emit(turn, text, cancelled)
            case TurnCancelled(turn=turn, reason=reason):
                self.turn_cancelled.emit(turn, reason)
            case TurnTimings(turn=turn, timings_ms=timings_ms):
                self.timings.emit(turn, dict(timings_ms))
            case ErrorOccurred(stage=stage, message=message, fatal=fatal):
                self.error.emit(stage, message, fatal)
            case DeviceRestored(stage=stage):
                self.device_restored.emit(stage)
            case SourceCaption():
                self.source_caption.emit(event)
            case TranslatedCaption():
                self.translated_caption.emit(event)
            case AudioStarted(turn=turn):
                self.audio_started.emit(turn)
            case AudioFinished(turn=turn, interrupted=interrupted):
                self.audio_finished.emit(turn, interrupted)
