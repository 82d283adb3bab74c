"""The speaking half of the pipeline: TTS and playback workers.

Part of ``Assistant`` (a mixin, so both halves share one lock, clock and event stream):
phrases become audio as soon as they arrive, but audio reaches the speaker only once
its turn is confirmed (a speculative reply waits here) and never after a newer turn
has begun, which is checked under the same lock that barge-in clears the speaker with.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from assistant.audio.resample import resample
from assistant.audio.trim import trim_quiet_start, without_quiet_end
from assistant.errors import AudioDeviceError
from assistant.events import (
    AudioFinished,
    AudioStarted,
    ErrorOccurred,
    State,
    StateChanged,
    TurnTimings,
)
from assistant.phrases import ends_mid_sentence
from assistant.pipeline.items import STOP, Phrase, Speech
from assistant.pipeline.turns import Ticket
from assistant.tts import TtsEngine


def phrase_audio(tts: TtsEngine, text: str) -> Iterator[np.ndarray]:
    """The phrase's audio; a phrase cut between words loses its quiet ending."""
    chunks = tts.synthesize(text)
    if not ends_mid_sentence(text):
        return iter(chunks)
    return without_quiet_end(chunks, tts.sample_rate)


class Voicing:
    """TTS and playback workers; the attributes they use are set up by ``Assistant``."""

    def _tts_loop(self) -> None:
        while True:
            item = self._phrases.get()
            if item is STOP:
                return
            try:
                self._speak(item)
            finally:
                if item.voiced is not None:
                    item.voiced.set()

    def _speak(self, item: Phrase) -> None:
        ticket = item.ticket
        if not self.clock.is_current(ticket):
            return
        rate = self.engines.tts.sample_rate
        if item.text is None:
            self._speech.put(Speech(ticket, None, rate))
            return
        self._mark(ticket, "tts_start")
        try:
            for samples in phrase_audio(self.engines.tts, item.text):
                if not self.clock.is_current(ticket):
                    break
                if item.voiced is not None and not item.voiced.is_set():
                    samples = trim_quiet_start(samples, rate)  # the reply's very first audio
                self._mark(ticket, "tts_first_audio")
                self._speech.put(Speech(ticket, samples, rate))
                if item.voiced is not None:
                    item.voiced.set()
        except Exception as exc:
            self._fail("tts", ticket, exc)

    def _wait_for_confirmation(self, ticket: Ticket) -> bool:
        with self._gate:
            while self._confirmed != ticket:
                if self._stop.is_set() or not self.clock.is_current(ticket):
                    return False
                self._gate.wait(0.1)
            return True

    def _playback_loop(self) -> None:
        while True:
            item = self._speech.get()
            if item is STOP:
                return
            ticket = item.ticket
            if not self._wait_for_confirmation(ticket):
                continue
            if item.samples is None:
                self._drain(ticket)
                continue
            turn = ticket.turn
            first = not self.timer.has(turn, "queued_audio")
            self.timer.mark(turn, "queued_audio", time.monotonic())
            try:
                if not self.sink.sample_rate:
                    raise AudioDeviceError("no speaker is open: the reply cannot be played")
                samples = resample(item.samples, item.rate, self.sink.sample_rate)
                with self._lock:
                    if not self.clock.is_current(ticket):
                        continue
                    self.sink.play(samples, self._on_first_sample(ticket) if first else None)
            except AudioDeviceError as exc:
                self._publish(ticket, ErrorOccurred(turn, "audio-out", str(exc)), finishes=True)

    def _on_first_sample(self, ticket: Ticket):
        def started(at: float) -> None:
            if not self.clock.is_current(ticket):
                return
            turn = ticket.turn
            self._audible.add(turn)
            self.timer.mark(turn, "first_sample", at)
            self._emit(AudioStarted(turn, at))
            self._emit(StateChanged(turn, State.SPEAKING))
            self._emit(TurnTimings(turn, self.timer.timings_ms(turn)))

        return started

    def _drain(self, ticket: Ticket) -> None:
        """Wait for the reply to finish playing, unless a newer turn takes over."""
        while self.clock.is_current(ticket) and not self._stop.is_set():
            if self.sink.wait_idle(0.05):
                break
        if self.clock.is_current(ticket):
            self._audible.discard(ticket.turn)
            self._emit(AudioFinished(ticket.turn, interrupted=False))
            self._finish_turn(ticket.turn)
