"""What every mode offers the window and the terminal: its events, start and shutdown."""

from __future__ import annotations

from assistant.events import EventHandler
from assistant.pipeline.runner import Runner
from assistant.pipeline.stage import StageContext


class Mode:
    """A composition of stage handlers on a ``Runner`` (set by the subclass)."""

    ctx: StageContext
    runner: Runner

    def subscribe(self, handler: EventHandler) -> None:
        self.ctx.subscribe(handler)

    def unsubscribe(self, handler: EventHandler) -> None:
        self.ctx.unsubscribe(handler)

    def start(self) -> None:
        self.runner.start()

    def shutdown(self, timeout: float = 10.0) -> list[str]:
        """Stop every worker; returns the names of any thread that failed to stop."""
        return self.runner.shutdown(timeout)
