from __future__ import annotations

import time

from assistant.llm import resolve_weights
from assistant.model_store import ModelStore


def run(args, config) -> int:
    """Verify every default model and do the one-time preparation (used by ``make setup``)."""
    store = ModelStore()
    start = time.monotonic()
    print(f"whisper: {store.whisper_dir()}")
    print(f"llm: {resolve_weights(store, 'default')[0]}")
    print(f"voice: {store.piper_voice()[0]}")
    print(f"models ready in {time.monotonic() - start:.1f} s")
    return 0
