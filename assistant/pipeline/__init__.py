"""The running modes: stage handlers on their own threads, joined by queues.

``Assistant``, ``Engines`` and ``load_engines`` are imported on first use, so that a module
the assistant mode itself imports (the echo setup, the barge-in policies) can import its
siblings in this package without a cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.pipeline.engines import Engines, load_engines
    from assistant.pipeline.modes.assistant import Assistant

_WHERE = {
    "Assistant": "assistant.pipeline.modes.assistant",
    "Engines": "assistant.pipeline.engines",
    "load_engines": "assistant.pipeline.engines",
}
__all__ = ["Assistant", "Engines", "load_engines"]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
