from __future__ import annotations

import time

from assistant.llm.transformers_chat import resolve_weights
from assistant.model_store import ModelStore
from assistant.tts.vits_split import split_voice


def run(args, config) -> int:
    """Verify every default model and do the one-time preparation (used by ``make setup``)."""
    store = ModelStore()
    start = time.monotonic()
    print(f"whisper: {store.whisper_dir()}")
    print(f"llm: {resolve_weights(store, 'default')[0]}")
    voice = store.piper_voice()[0]
    split = split_voice(voice, store.root / "models")
    print(f"voice: {voice}" + (f" (streamed through {split.vocoder.parent})" if split else ""))
    print(f"models ready in {time.monotonic() - start:.1f} s")
    return 0
