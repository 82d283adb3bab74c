from __future__ import annotations

import sys
import time

from assistant.llm.transformers_chat import resolve_weights
from assistant.model_store import ModelStore
from assistant.tts.vits_split import split_voice


def run(args, config) -> int:
    """Verify every default model in full and make what is derived from them once (used by
    ``make setup``); a damaged prepared copy is made again."""
    store = ModelStore()
    start = time.monotonic()
    announce("Whisper")
    print(f"whisper: {store.whisper_dir(full=True)}")
    announce("LLM")
    print(f"llm: {resolve_weights(store, 'default', full=True)[0]}")
    announce("voice")
    voice = store.piper_voice(full=True)[0]
    split = split_voice(voice, store.derived, full=True)
    print(f"voice: {voice}" + (f" (streamed through {split.vocoder.parent})" if split else ""))
    announce("translation")
    print(f"translation: {store.translation_gguf(full=True)}")
    print(f"models ready in {time.monotonic() - start:.1f} s (every file's sha256 checked)")
    return 0


def announce(what: str) -> None:
    """Says on a terminal what is being checked, since a first conversion takes a while."""
    if sys.stderr.isatty():
        print(f"checking the {what} model…", file=sys.stderr, flush=True)
