"""The live assistant: capture, VAD, ASR, LLM, TTS and playback, each in its own thread.

Stages are joined by queues and never call each other. Each queued item carries its
turn; a new utterance (barge-in) or Stop begins a new turn, clears the speaker at once,
and every worker drops the older items it meets. Subscribers receive typed events from
the worker threads (the Qt bridge re-posts them to the GUI thread). The TTS and playback
workers live in ``voicing.py``, the queued items in ``items.py``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import numpy as np

from assistant.asr import Abandoned
from assistant.audio.blocks import AudioBlock
from assistant.audio.sinks import AudioSink
from assistant.audio.sources import AudioSource
from assistant.config import AssistantConfig
from assistant.errors import AudioDeviceError
from assistant.events import (
    AudioFinished,
    DeviceRestored,
    ErrorOccurred,
    Event,
    EventHandler,
    FinalTranscript,
    NothingHeard,
    PartialTranscript,
    Ready,
    ReplyFinished,
    ReplyToken,
    SpeechEnded,
    SpeechStarted,
    State,
    StateChanged,
    TurnCancelled,
)
from assistant.phrases import PhraseSplitter
from assistant.pipeline.engines import Engines
from assistant.pipeline.items import STOP, Ask, Heard, Phrase
from assistant.pipeline.timing import TurnTimer
from assistant.pipeline.turns import Ticket, TurnClock
from assistant.pipeline.voicing import Voicing
from assistant.turn_end import reads_finished
from assistant.vad import (
    WINDOW,
    Endpointer,
    SileroVad,
    SpeechPaused,
    SpeechProgress,
    SpeechResumed,
    SpeechStart,
    Utterance,
)

log = logging.getLogger(__name__)
_RECONNECT_S = 2.0
_FIRST_AUDIO_WAIT_S = 2.0  # the longest the LLM pauses for TTS's first audio


class Assistant(Voicing):
    def __init__(
        self,
        config: AssistantConfig,
        engines: Engines,
        source: AudioSource,
        sink: AudioSink,
        *,
        partial_every_s: float = 0.0,
    ) -> None:
        self.config = config
        self.engines = engines
        self.source = source
        self.sink = sink
        self.clock = TurnClock()
        self.timer = TurnTimer()
        self._endpointer = Endpointer(config.vad, progress_every_s=partial_every_s)
        self._vad = SileroVad()
        self._handlers: list[EventHandler] = []
        self._stop = threading.Event()
        self._lock = threading.RLock()  # re-entrant: FileSink calls back inside play()
        self._gate = threading.Condition(self._lock)  # playback waits for a confirmed turn
        self._confirmed: Ticket | None = None  # the attempt whose turn has surely ended
        self._held: list[tuple[Event, bool]] = []  # events of an unconfirmed attempt
        self._speculating = False  # the current attempt started on a SpeechPaused
        self._dropped: set[Ticket] = set()  # speculative attempts the user talked over
        self._remembered: Ticket | None = None  # whose exchange the LLM memory ends with
        self._active: int | None = None  # the turn being answered, if any
        self._audible: set[int] = set()  # turns whose reply has started playing
        self._ignoring = False  # an utterance heard while busy with barge-in off
        self._controls: queue.Queue[tuple[str, object, float]] = queue.Queue()
        self._captured: queue.Queue = queue.Queue()
        self._heard: queue.Queue = queue.Queue()
        self._asks: queue.Queue = queue.Queue()
        self._phrases: queue.Queue = queue.Queue()
        self._speech: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._source_open = False

    # -- public API ---------------------------------------------------------------------
    def subscribe(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def unsubscribe(self, handler: EventHandler) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    def start(self) -> None:
        """Open the audio devices and start the workers (models are already loaded)."""
        try:
            self.sink.start()
        except AudioDeviceError as exc:
            self._emit(ErrorOccurred(0, "audio-out", str(exc)))
        try:
            self.source.start()
            self._source_open = True
        except AudioDeviceError as exc:
            self._emit(ErrorOccurred(0, "audio-in", f"{exc}; retrying every {_RECONNECT_S:.0f} s"))
        for name, target in (
            ("capture", self._capture_loop),
            ("vad", self._vad_loop),
            ("asr", self._asr_loop),
            ("llm", self._llm_loop),
            ("tts", self._tts_loop),
            ("playback", self._playback_loop),
        ):
            thread = threading.Thread(target=target, name=f"assistant-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._emit(Ready(self.clock.turn))
        self._emit(StateChanged(self.clock.turn, State.LISTENING))

    def push_to_talk(self, down: bool) -> None:
        """Press or release the talk button; applied at the audio captured at this instant."""
        self._controls.put(("ptt", down, time.monotonic()))

    def set_mode(self, mode: str) -> None:
        """Switch to "hands-free" or "push-to-talk" while running."""
        if mode not in ("hands-free", "push-to-talk"):
            raise ValueError(f"unknown listening mode {mode!r}")
        self._controls.put(("mode", mode, time.monotonic()))

    def ask(self, text: str) -> int:
        """Answer typed text as if it had been spoken; returns the new turn."""
        ticket = self._begin_turn("barge-in")
        self._confirm(ticket)
        self._emit(FinalTranscript(ticket.turn, text, self.config.asr.language or ""))
        self._emit(StateChanged(ticket.turn, State.THINKING))
        self._asks.put(Ask(ticket, text))
        return ticket.turn

    def stop_speaking(self) -> None:
        """Drop the current reply (LLM, TTS and playback) at once."""
        self._begin_turn("stop")
        self._emit(StateChanged(self.clock.turn, State.LISTENING))

    def shutdown(self, timeout: float = 10.0) -> list[str]:
        """Stop every worker; returns the names of any thread that failed to stop."""
        self._stop.set()
        with self._lock:
            self.clock.begin()
            self.sink.clear()
            self._gate.notify_all()
        self.source.close()
        for q in (self._captured, self._heard, self._asks, self._phrases, self._speech):
            q.put(STOP)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.sink.close()
        self._emit(StateChanged(self.clock.turn, State.STOPPED))
        return [t.name for t in self._threads if t.is_alive()]

    @property
    def busy(self) -> bool:
        return self._active is not None

    # -- turns --------------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:  # a broken subscriber must not take a stage down
                log.exception("event handler failed on %r", event)

    def _publish(self, ticket: Ticket, event: Event, *, finishes: bool = False) -> None:
        """Emit a worker's event, holding it back while its attempt is only speculative.

        A speculative attempt's transcript and reply must not reach the window until the
        turn is known to be over: if the user goes on talking they are dropped unseen.
        """
        with self._lock:
            if not self.clock.is_current(ticket):
                return
            if self._confirmed != ticket:
                self._held.append((event, finishes))
                return
        self._emit(event)
        if finishes:
            self._finish_turn(ticket.turn)

    def _confirm(self, ticket: Ticket) -> None:
        """The turn has ended: let its attempt speak and release what it held back."""
        with self._lock:
            if not self.clock.is_current(ticket):
                return
            self._confirmed = ticket
            self._active = ticket.turn
            held, self._held = self._held, []
            self._gate.notify_all()
        for event, finishes in held:
            self._emit(event)
            if finishes:
                self._finish_turn(ticket.turn)

    def _begin_turn(self, reason: str) -> Ticket:
        """Start a new turn, cancelling whatever the previous one still had in flight."""
        with self._lock:
            old = self._active
            self._active = None
            ticket = self.clock.begin()
            self._held = []
            self._speculating = False
            self._dropped = {t for t in self._dropped if t == self._remembered}
            # Under the same lock as the playback worker's check-then-play, so no chunk of
            # the old turn can be queued after this clear.
            self.sink.clear()
            self._gate.notify_all()
        if old is not None:
            self._emit(TurnCancelled(old, reason))
            if old in self._audible:
                self._audible.discard(old)
                self._emit(AudioFinished(old, interrupted=True))
        self.timer.forget_before(ticket.turn)
        return ticket

    def _retry_turn(self) -> Ticket:
        """The user went on speaking: drop the speculative attempt, keep the turn."""
        with self._lock:
            self._dropped.add(self.clock.current)
            ticket = self.clock.retry()
            self._held = []
            self._speculating = False
            self.sink.clear()
            self._gate.notify_all()
        self.timer.reset(ticket.turn)
        return ticket

    def _mark(self, ticket: Ticket, name: str) -> None:
        """Record a stage time, unless the attempt is stale (it must not skew the new one)."""
        if self.clock.is_current(ticket):
            self.timer.mark(ticket.turn, name, time.monotonic())

    def _finish_turn(self, turn: int) -> None:
        with self._lock:
            if self._active != turn:
                return
            self._active = None
        self._emit(StateChanged(turn, State.LISTENING))

    def _fail(self, stage: str, ticket: Ticket, exc: BaseException, *, finishes: bool = False):
        log.exception("%s stage failed", stage)
        self._publish(
            ticket,
            ErrorOccurred(ticket.turn, stage, f"{type(exc).__name__}: {exc}"),
            finishes=finishes,
        )

    # -- workers ------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        opened = self._source_open
        while not self._stop.is_set():
            if not opened:
                if self._stop.wait(_RECONNECT_S):
                    return
                try:
                    self.source.start()
                    opened = True
                    self._emit(DeviceRestored(self.clock.turn, "audio-in"))
                except AudioDeviceError:
                    continue
            try:
                block = self.source.read(timeout=0.1)
            except AudioDeviceError as exc:
                self._emit(ErrorOccurred(self.clock.turn, "audio-in", str(exc)))
                self.source.close()
                opened = False
                continue
            if block is not None:
                self._captured.put(block)

    def _vad_loop(self) -> None:
        pending = np.zeros(0, dtype=np.float32)
        controls: list[tuple[str, object, float]] = []
        rate = self.config.audio.sample_rate
        while True:
            block = self._captured.get()
            if block is STOP:
                return
            while not self._controls.empty():
                controls.append(self._controls.get())
            assert isinstance(block, AudioBlock)
            pending = np.concatenate([pending, block.samples])
            n = pending.size // WINDOW
            for i in range(n):
                window = pending[i * WINDOW : (i + 1) * WINDOW]
                at = block.captured_at - (pending.size - (i + 1) * WINDOW) / rate
                # A press or release belongs to the audio captured when it happened, even
                # if this worker is behind: apply it just before the first later window.
                while controls and controls[0][2] <= at:
                    self._apply_control(*controls.pop(0))
                try:
                    prob = self._vad(window)
                except Exception as exc:
                    self._fail("vad", self.clock.current, exc)
                    prob = 0.0
                for event in self._endpointer.process(window, prob, at):
                    self._on_vad_event(event)
            pending = pending[n * WINDOW :]

    def _apply_control(self, kind: str, value, at: float) -> None:
        if kind == "finished":  # the speculative transcript reads as a whole sentence
            if self._speculating and self.clock.is_current(value):
                self._endpointer.end_early(self.config.vad.finished_silence_ms)
            return
        if kind == "mode":
            self._endpointer.set_mode(value)
            self._speculating = False
            return
        for event in self._endpointer.push_to_talk(bool(value), at):
            self._on_vad_event(event)

    def _on_vad_event(self, event) -> None:
        if isinstance(event, SpeechStart):
            if self.busy and not (self.config.vad.barge_in or self._ptt_mode):
                self._ignoring = True
                return
            self._ignoring = False
            ticket = self._begin_turn("barge-in")
            self._emit(SpeechStarted(ticket.turn, event.at))
            self._emit(StateChanged(ticket.turn, State.HEARING))
        elif self._ignoring:
            self._ignoring = not isinstance(event, Utterance)
        elif isinstance(event, SpeechProgress):
            voiced = not self._ptt_mode  # hands-free speech is confirmed before progress
            self._heard.put(Heard(self.clock.current, event.audio, final=False, voiced=voiced))
        elif isinstance(event, SpeechPaused):
            # Start on the reply now; it plays only once the silence confirms the turn.
            ticket = self.clock.current
            self._speculating = True
            self.timer.mark(ticket.turn, "speech_end", event.speech_end_at, first=False)
            self._heard.put(Heard(ticket, event.audio, final=True, voiced=True))
        elif isinstance(event, SpeechResumed):
            if self._speculating:
                self._retry_turn()
        elif isinstance(event, Utterance):
            self._end_of_turn(event)

    def _end_of_turn(self, event: Utterance) -> None:
        ticket = self.clock.current
        self.timer.mark(ticket.turn, "speech_end", event.speech_end_at, first=False)
        self.timer.mark(ticket.turn, "endpoint", event.decided_at)
        duration = event.audio.size / self.config.audio.sample_rate
        self._emit(SpeechEnded(ticket.turn, event.speech_end_at, duration))
        self._emit(StateChanged(ticket.turn, State.THINKING))
        if not self._speculating:
            # Push-to-talk audio is whatever was held down; hands-free speech is confirmed.
            voiced = not self._ptt_mode
            self._heard.put(Heard(ticket, event.audio, final=True, voiced=voiced))
        self._speculating = False
        self._confirm(ticket)

    @property
    def _ptt_mode(self) -> bool:
        return self.config.vad.mode == "push-to-talk"

    def _asr_loop(self) -> None:
        while True:
            item = self._heard.get()
            if item is STOP:
                return
            ticket = item.ticket
            if not self.clock.is_current(ticket):
                continue
            if not item.final:
                if self._heard.empty():
                    self._partial(item)
                continue
            self._mark(ticket, "asr_start")
            try:
                transcript = self.engines.recognizer.transcribe(
                    item.audio, abandoned=self._stale(ticket), speech_known=item.voiced
                )
            except Abandoned:
                continue
            except Exception as exc:
                self._fail("asr", ticket, exc, finishes=True)
                continue
            self._mark(ticket, "asr_end")
            if not transcript.text:
                self._publish(
                    ticket, NothingHeard(ticket.turn, "no words recognised"), finishes=True
                )
                continue
            self._publish(
                ticket, FinalTranscript(ticket.turn, transcript.text, transcript.language)
            )
            if self.clock.is_current(ticket):
                self._asks.put(Ask(ticket, transcript.text))
                if self.config.vad.finished_silence_ms and reads_finished(transcript.text):
                    # Applied by the VAD worker at the audio captured from now on.
                    self._controls.put(("finished", ticket, time.monotonic()))

    def _stale(self, ticket: Ticket):
        return lambda: not self.clock.is_current(ticket)

    def _superseded(self, ticket: Ticket):
        """A partial transcript gives way to a newer turn and to audio queued behind it:
        the final transcript must not wait for a caption nobody will read."""
        return lambda: not self.clock.is_current(ticket) or not self._heard.empty()

    def _partial(self, item: Heard) -> None:
        try:
            transcript = self.engines.recognizer.transcribe(
                item.audio, abandoned=self._superseded(item.ticket), speech_known=item.voiced
            )
        except Abandoned:
            return
        except Exception as exc:
            self._fail("asr", item.ticket, exc)
            return
        if transcript.text and self.clock.is_current(item.ticket):
            self._emit(PartialTranscript(item.ticket.turn, transcript.text))

    def _llm_loop(self) -> None:
        tts = self.config.tts
        while True:
            item = self._asks.get()
            if item is STOP:
                return
            ticket = item.ticket
            turn = ticket.turn
            self._forget_dropped_attempt()
            if not self.clock.is_current(ticket):
                continue
            splitter = PhraseSplitter(
                tts.min_phrase_chars, tts.max_phrase_chars, tts.first_phrase_words
            )
            self._mark(ticket, "llm_start")
            first: list[threading.Event] = []

            def speak(phrase: str, ticket: Ticket = ticket, first=first) -> None:
                self._mark(ticket, "llm_first_phrase")
                voiced = None if first else threading.Event()
                self._phrases.put(Phrase(ticket, phrase, voiced))
                if voiced is not None:
                    first.append(voiced)
                    # Two cores: decoding on would halve TTS's share while the user waits
                    # for the first sound. The rest of the reply has the whole first
                    # phrase's playback to catch up, so pause until it has audio.
                    voiced.wait(_FIRST_AUDIO_WAIT_S)
                    self.engines.chat.share_cores()

            def on_text(text: str, ticket: Ticket = ticket, splitter=splitter, speak=speak):
                self._mark(ticket, "llm_first_token")
                self._publish(ticket, ReplyToken(ticket.turn, text))
                for phrase in splitter.feed(text):
                    speak(phrase)

            try:
                text, cancelled = self.engines.chat.reply(
                    item.text, on_text, cancelled=self._stale(ticket)
                )
            except Exception as exc:
                self._fail("llm", ticket, exc)
                text, cancelled = "", False
            self._remembered = ticket
            self._forget_dropped_attempt()
            if cancelled and self.clock.turn == turn:
                continue  # only the speculative attempt was dropped: nothing to announce
            if not cancelled:
                for phrase in splitter.flush():
                    speak(phrase)
            self._publish(ticket, ReplyFinished(turn, text, cancelled))
            self._phrases.put(Phrase(ticket, None))
            self._prepare_next_turn()

    def _prepare_next_turn(self) -> None:
        """Read the exchange into the LLM's cache while the reply plays (see prefill)."""
        try:
            self.engines.chat.prefill()
        except Exception:  # only a speed-up: the next reply reads what the cache lacks
            log.exception("prefilling the LLM cache failed")

    def _forget_dropped_attempt(self) -> None:
        """A reply the user talked over before the turn ended never happened: the LLM's
        memory must not keep it (runs on the LLM worker, which owns that memory)."""
        with self._lock:
            dropped = self._remembered in self._dropped
            if dropped:
                self._dropped.clear()
        if dropped:
            self._remembered = None
            self.engines.chat.forget_last()
