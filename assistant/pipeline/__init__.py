"""The running assistant: stage handlers on their own threads, joined by queues."""

from assistant.pipeline.engines import Engines, load_engines
from assistant.pipeline.modes.assistant import Assistant

__all__ = ["Assistant", "Engines", "load_engines"]
