"""The running assistant: stage workers joined by queues, with turns and cancellation."""

from assistant.pipeline.engines import Engines, load_engines
from assistant.pipeline.runner import Assistant

__all__ = ["Assistant", "Engines", "load_engines"]
