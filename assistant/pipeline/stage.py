"""What a stage handler is, and what the runner gives every handler to work with.

A handler has one job: ``process(item)`` turns one input into zero or more outputs,
which the runner passes to the next stage's queue. Handlers never call each other; they
meet only in the ``StageContext``: the turn state, the event stream and the stage clock.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from assistant.config import AssistantConfig
from assistant.events import AudioFinished, ErrorOccurred, Event, State, StateChanged, TurnCancelled
from assistant.pipeline.timing import TurnTimer
from assistant.pipeline.turn_state import TurnState
from assistant.pipeline.turns import Ticket

log = logging.getLogger(__name__)


class StageContext:
    """The runner's side of the pipeline, as the handlers see it."""

    def __init__(self, config: AssistantConfig) -> None:
        self.config = config
        self.turns = TurnState()
        self.timer = TurnTimer()
        self._subscribers: list[Callable[[Event], None]] = []

    # -- events -------------------------------------------------------------------------
    def subscribe(self, handler: Callable[[Event], None]) -> None:
        self._subscribers.append(handler)

    def unsubscribe(self, handler: Callable[[Event], None]) -> None:
        if handler in self._subscribers:
            self._subscribers.remove(handler)

    def emit(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken subscriber must not take a stage down
                log.exception("event handler failed on %r", event)

    def publish(self, ticket: Ticket, event: Event, *, finishes: bool = False) -> None:
        """Emit a handler's event for its attempt: held back while the attempt is only
        speculative, dropped if it is stale; ``finishes`` ends the turn with it."""
        if self.turns.admit(ticket, event, finishes):
            self._release([(event, finishes)], ticket.turn)

    def fail(self, stage: str, ticket: Ticket, exc: BaseException, *, finishes: bool = False):
        """One line for the user; the traceback goes to the log only."""
        log.warning("%s stage failed", stage, exc_info=exc)
        message = str(exc) if _is_user_facing(exc) else f"{type(exc).__name__}: {exc}"
        self.publish(ticket, ErrorOccurred(ticket.turn, stage, message), finishes=finishes)

    # -- turns --------------------------------------------------------------------------
    def new_turn(self, reason: str) -> Ticket:
        """Start a turn, cancelling (and announcing) whatever the last one had in flight."""
        ticket, cancelled = self.turns.new_turn()
        if cancelled.turn is not None:
            self.emit(TurnCancelled(cancelled.turn, reason))
            if cancelled.audible:
                self.emit(AudioFinished(cancelled.turn, interrupted=True))
        self.timer.forget_before(ticket.turn)
        return ticket

    def retry_turn(self) -> None:
        """The user went on speaking after a pause: drop the speculative attempt."""
        ticket = self.turns.resumed()
        if ticket is not None:
            self.timer.reset(ticket.turn)

    def confirm(self, ticket: Ticket) -> None:
        """The turn's speech is over: let its attempt speak and show what it held."""
        held = self.turns.confirm(ticket)
        if held:
            self._release(held, ticket.turn)

    def finish(self, turn: int) -> None:
        if self.turns.finished(turn):
            self.emit(StateChanged(turn, State.LISTENING))

    def mark(self, ticket: Ticket, name: str, at: float | None = None) -> None:
        """Record a stage time, unless the attempt is stale (it must not skew the new one)."""
        if self.turns.is_current(ticket):
            self.timer.mark(ticket.turn, name, time.monotonic() if at is None else at)

    def stale(self, ticket: Ticket) -> Callable[[], bool]:
        return lambda: not self.turns.is_current(ticket)

    def _release(self, events: list[tuple[Event, bool]], turn: int) -> None:
        for event, finishes in events:
            self.emit(event)
            if finishes:
                self.finish(turn)


def _is_user_facing(exc: BaseException) -> bool:
    from assistant.errors import UserFacingError

    return isinstance(exc, UserFacingError)


class Handler(ABC):
    """One stage's job. ``waiting`` tells whether more input is queued behind the item
    being processed (set by the runner when it wires the stage)."""

    name: str = ""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.waiting: Callable[[], bool] = lambda: False

    @abstractmethod
    def process(self, item) -> Iterable[object]:
        """The outputs for ``item``, in order; the runner queues each as it comes."""

    def ticket(self, item) -> Ticket | None:
        """The attempt ``item`` belongs to; the runner drops items of stale attempts."""
        return getattr(item, "ticket", None)

    def start(self) -> None:  # noqa: B027 (optional hook)
        """Open what the stage needs (a device) before any item arrives."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release it after the stage's worker has stopped."""
