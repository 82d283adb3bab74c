"""Runs a mode: its stage handlers, each on its own thread, joined by queues.

The runner owns everything that is not one stage's job: the threads and queues, the
capture loop that feeds the first stage (and reconnects a lost microphone), dropping
items of stale attempts before a handler sees them, and shutdown. Which handlers run, in
which order, is the mode's choice (``assistant/pipeline/modes``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

from assistant.audio.sources import AudioSource
from assistant.errors import AudioDeviceError
from assistant.events import DeviceRestored, ErrorOccurred, Ready, State, StateChanged
from assistant.pipeline.items import STOP
from assistant.pipeline.stage import Handler, StageContext

log = logging.getLogger(__name__)
_RECONNECT_S = 2.0


class Runner:
    def __init__(self, ctx: StageContext, source: AudioSource, handlers: Sequence[Handler]):
        self.ctx = ctx
        self.source = source
        self.handlers = list(handlers)
        self._inboxes = {h.name: queue.Queue() for h in self.handlers}
        for handler in self.handlers:
            inbox = self._inboxes[handler.name]
            handler.waiting = lambda inbox=inbox: not inbox.empty()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Open the devices and start the workers (models are already loaded).

        A source that cannot be opened raises its ``AudioDeviceError`` before anything
        else has started: a microphone missing at start is the user's to fix, not one to
        wait for. (One lost later is reopened by the capture loop.) ``shutdown`` after a
        failed start is safe."""
        self.source.start()
        try:
            for handler in self.handlers:
                handler.start()
        except BaseException:
            self.source.close()
            raise
        self._spawn("capture", self._capture_loop)
        for i, handler in enumerate(self.handlers):
            following = self.handlers[i + 1] if i + 1 < len(self.handlers) else None
            outbox = self._inboxes[following.name] if following else None
            self._spawn(handler.name, self._work, handler, self._inboxes[handler.name], outbox)
        turn = self.ctx.turns.current.turn
        self.ctx.emit(Ready(turn))
        self.ctx.emit(StateChanged(turn, State.LISTENING))

    def put(self, stage: str, item: object) -> None:
        """Hand ``item`` to a stage from outside the pipeline (a typed question)."""
        self._inboxes[stage].put(item)

    def shutdown(self, timeout: float = 10.0) -> list[str]:
        """Stop every worker; returns the names of any thread that failed to stop."""
        self._stop.set()
        self.ctx.turns.stop()
        self.source.close()
        for inbox in self._inboxes.values():
            inbox.put(STOP)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for handler in self.handlers:
            handler.close()
        self.ctx.emit(StateChanged(self.ctx.turns.current.turn, State.STOPPED))
        return [t.name for t in self._threads if t.is_alive()]

    def _spawn(self, name: str, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=f"assistant-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _work(self, handler: Handler, inbox: queue.Queue, outbox: queue.Queue | None) -> None:
        turns = self.ctx.turns
        while (item := inbox.get()) is not STOP:
            ticket = handler.ticket(item)
            if ticket is not None and not turns.is_current(ticket):
                continue
            try:
                for out in handler.process(item):
                    if outbox is not None and out is not None:
                        outbox.put(out)
            except Exception as exc:
                self.ctx.fail(handler.name, ticket or turns.current, exc)

    def _capture_loop(self) -> None:
        first = self.handlers[0].name
        opened = True  # by start
        while not self._stop.is_set():
            if not opened:
                if self._stop.wait(_RECONNECT_S):
                    return
                try:
                    self.source.start()
                    opened = True
                    self.ctx.emit(DeviceRestored(self.ctx.turns.current.turn, "audio-in"))
                except AudioDeviceError:
                    continue
            try:
                block = self.source.read(timeout=0.1)
            except AudioDeviceError as exc:
                self.ctx.emit(ErrorOccurred(self.ctx.turns.current.turn, "audio-in", str(exc)))
                self.source.close()
                opened = False
                continue
            if block is not None:
                self._inboxes[first].put(block)
