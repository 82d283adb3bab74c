"""The one object that knows which attempt of which turn may speak.

A turn is one exchange: the user speaks, the assistant answers. Within a turn there may
be several attempts: after a short pause the reply is prepared speculatively, and if the
user goes on talking that attempt is dropped and a new one starts with the longer audio.
Every flag this needs lives here, changed only through the named transitions below, all
under one lock; stage handlers ask and tell this object, never each other.

    listening --speech_started--> hearing --paused--> speculating --resumed--> hearing
    hearing/speculating --speech_ended--> confirmed (the attempt may play) --finished--> listening
    any --new_turn (barge-in, Stop, typed question)--> the old turn is cancelled
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from assistant.events import Event
from assistant.pipeline.turns import Ticket, TurnClock


@dataclass(frozen=True)
class Cancelled:
    """What a new turn cut short: the turn being answered and whether it was audible."""

    turn: int | None
    audible: bool


class TurnState:
    def __init__(self) -> None:
        self.clock = TurnClock()
        # Re-entrant: a file sink calls back into the playback handler inside play().
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._confirmed: Ticket | None = None  # the attempt whose turn has surely ended
        self._held: list[tuple[Event, bool]] = []  # events of the unconfirmed attempt
        self._speculating = False  # the current attempt started on a pause
        self._dropped: set[Ticket] = set()  # speculative attempts the user talked over
        self._remembered: Ticket | None = None  # whose exchange the LLM memory ends with
        self._active: int | None = None  # the turn being answered, if any
        self._audible: set[int] = set()  # turns whose reply has started playing
        self._ignoring = False  # an utterance heard while busy, with barge-in off
        self._finish_early: Ticket | None = None  # this attempt's words read as finished
        self._first_audio: set[Ticket] = set()  # attempts whose reply has audio
        self._stopped = False
        self._on_new_attempt: list[Callable[[], None]] = []

    # -- queries ------------------------------------------------------------------------
    @property
    def current(self) -> Ticket:
        return self.clock.current

    def is_current(self, ticket: Ticket) -> bool:
        return self.clock.is_current(ticket)

    @property
    def busy(self) -> bool:
        """A turn is being answered (between the end of speech and the end of playback)."""
        return self._active is not None

    @property
    def stopped(self) -> bool:
        return self._stopped

    def on_new_attempt(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` under the lock whenever the current attempt changes: the
        speaker is cleared there, so no chunk of an old attempt can play after it."""
        self._on_new_attempt.append(callback)

    # -- transitions --------------------------------------------------------------------
    def new_turn(self) -> tuple[Ticket, Cancelled]:
        """The user spoke, typed or pressed Stop: everything in flight becomes stale."""
        with self.lock:
            old = self._active
            self._active = None
            ticket = self.clock.begin()
            self._held = []
            self._speculating = False
            self._finish_early = None
            self._first_audio.clear()
            self._dropped = {t for t in self._dropped if t == self._remembered}
            audible = old is not None and old in self._audible
            self._audible.discard(old)
            self._attempt_changed()
        return ticket, Cancelled(old, audible)

    def speech_started(self, may_interrupt: bool) -> bool:
        """Speech began. False when it is to be ignored: the assistant is answering and
        may not be interrupted, so this utterance is dropped whole."""
        self._ignoring = self.busy and not may_interrupt
        return not self._ignoring

    def ignoring(self, utterance_ended: bool) -> bool:
        """Whether a VAD event belongs to an ignored utterance (which ends with it)."""
        if not self._ignoring:
            return False
        self._ignoring = not utterance_ended
        return True

    def paused(self) -> Ticket:
        """A pause: the current attempt starts on the reply speculatively."""
        with self.lock:
            self._speculating = True
            return self.clock.current

    def resumed(self) -> Ticket | None:
        """The user went on speaking: drop the speculative attempt, keep the turn.
        Returns the new attempt, or None when nothing was speculating."""
        with self.lock:
            if not self._speculating:
                return None
            self._dropped.add(self.clock.current)
            ticket = self.clock.retry()
            self._held = []
            self._speculating = False
            self._finish_early = None
            self._first_audio.clear()
            self._attempt_changed()
            return ticket

    def speech_ended(self) -> tuple[Ticket, bool]:
        """The turn's speech is over. Returns its attempt and whether its audio still
        needs transcribing (False when the speculative attempt already has it)."""
        with self.lock:
            needs_transcript = not self._speculating
            self._speculating = False
            return self.clock.current, needs_transcript

    def utterance_dropped(self) -> None:
        """The endpointer dropped a half-heard utterance (the listening mode changed)."""
        with self.lock:
            self._speculating = False

    def confirm(self, ticket: Ticket) -> list[tuple[Event, bool]] | None:
        """The turn has ended: its attempt may play. Returns the events it held back
        (each with whether it finishes the turn), or None if the attempt is stale."""
        with self.lock:
            if not self.clock.is_current(ticket):
                return None
            self._confirmed = ticket
            self._active = ticket.turn
            held, self._held = self._held, []
            self._changed.notify_all()
            return held

    def admit(self, ticket: Ticket, event: Event, finishes: bool) -> bool:
        """Whether a worker's event may be shown now. A speculative attempt's events are
        held until its turn is confirmed (dropped unseen if the user goes on talking);
        a stale attempt's are dropped."""
        with self.lock:
            if not self.clock.is_current(ticket):
                return False
            if self._confirmed != ticket:
                self._held.append((event, finishes))
                return False
            return True

    def finished(self, turn: int) -> bool:
        """The turn's answer is over; False if it had already ended or been replaced."""
        with self.lock:
            if self._active != turn:
                return False
            self._active = None
            self._audible.discard(turn)
            return True

    def transcript_finished(self, ticket: Ticket) -> None:
        """The speculative transcript reads as a whole sentence: end the pause sooner."""
        with self.lock:
            if self.clock.is_current(ticket):
                self._finish_early = ticket

    def take_finish_early(self) -> bool:
        """Whether the endpointer should now shorten the current pause (asked once)."""
        with self.lock:
            ticket, self._finish_early = self._finish_early, None
            return ticket is not None and self._speculating and self.clock.is_current(ticket)

    def replied(self, ticket: Ticket) -> None:
        """The LLM's memory now ends with this attempt's exchange."""
        with self.lock:
            self._remembered = ticket

    def take_dropped_reply(self) -> bool:
        """Whether the exchange the LLM remembers last was talked over before its turn
        ended, so it never happened and must be forgotten (asked once)."""
        with self.lock:
            dropped = self._remembered is not None and self._remembered in self._dropped
            if dropped:
                self._dropped.clear()
                self._remembered = None
            return dropped

    def first_audio(self, ticket: Ticket) -> None:
        """The attempt's reply has its first audio."""
        with self.lock:
            if self.clock.is_current(ticket):
                self._first_audio.add(ticket)
                self._changed.notify_all()

    def wait_first_audio(self, ticket: Ticket, timeout: float) -> None:
        """Until the attempt's reply has audio, or the attempt is stale, or ``timeout``."""
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    ticket in self._first_audio
                    or not self.clock.is_current(ticket)
                    or self._stopped
                ),
                timeout,
            )

    def started_playing(self, ticket: Ticket) -> bool:
        with self.lock:
            if not self.clock.is_current(ticket):
                return False
            self._audible.add(ticket.turn)
            return True

    def wait_confirmed(self, ticket: Ticket) -> bool:
        """Until the attempt may play; False once it is stale or the runner stops."""
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self._confirmed == ticket or self._stopped or not self.clock.is_current(ticket)
                )
            )
            return self._confirmed == ticket and not self._stopped

    def stop(self) -> None:
        """Shutdown: every attempt becomes stale and every waiter wakes."""
        with self.lock:
            self._stopped = True
            self.clock.begin()
            self._attempt_changed()

    def _attempt_changed(self) -> None:
        for callback in self._on_new_attempt:
            callback()
        self._changed.notify_all()
