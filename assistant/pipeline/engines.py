"""Loading every model once, before any audio flows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assistant.asr import WhisperRecognizer
from assistant.compute import one_blas_thread
from assistant.config import AssistantConfig
from assistant.errors import ConfigError
from assistant.llm import ChatBackend, create_chat
from assistant.model_store import ModelStore
from assistant.tts import TtsEngine, create_engine

# Settings read only while loading: changing them needs the engines loaded again.
_LOAD_TIME = {
    "asr": ("model", "device", "compute_type", "cpu_threads", "language"),
    "llm": ("backend", "model", "device", "path", "quantize", "threads", "url", "served_model"),
    "tts": ("engine", "voice", "speed"),
}


@dataclass
class Engines:
    recognizer: WhisperRecognizer
    chat: ChatBackend
    tts: TtsEngine
    config: AssistantConfig | None = None  # what they were loaded with

    def adopt(self, config: AssistantConfig) -> None:
        """Make ``config`` the one settings object every engine reads from now on, so a
        setting changed there (a system prompt, a token limit) reaches the loaded models.
        Settings that only act while loading must match what was loaded."""
        loaded = self.config
        if loaded is not None and loaded is not config:
            for section, names in _LOAD_TIME.items():
                old, new = getattr(loaded, section), getattr(config, section)
                for name in names:
                    if getattr(old, name) != getattr(new, name):
                        raise ConfigError(
                            f"{section}.{name} = {getattr(new, name)!r} differs from the "
                            f"loaded {getattr(old, name)!r}: load the engines again"
                        )
        self.recognizer.config = config.asr
        self.chat.config = config.llm
        self.chat.conversation.system_prompt = config.llm.system_prompt
        self.config = config


def load_engines(
    config: AssistantConfig,
    store: ModelStore | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> Engines:
    """Load (and on first run prepare) all models; slow, so never call it on a GUI thread."""
    config.validate()  # a config built in code gets the same checks as a file
    store = store or ModelStore()
    one_blas_thread()
    progress("loading speech recognition")
    recognizer = WhisperRecognizer(store.whisper_dir(config.asr.model), config.asr)
    progress("loading the language model")
    chat = create_chat(config.llm, store)
    progress("loading the voice")
    tts = create_engine(config.tts, store)
    engines = Engines(recognizer, chat, tts, config)
    progress("warming up")
    warm_up(engines)
    return_freed_memory()
    return engines


def return_freed_memory() -> None:
    """Hand the heap pages freed while loading back to the system (glibc only).

    Quantising the LLM and converting weights at load free temporaries that glibc would
    otherwise keep mapped for reuse, about a sixth of the loaded app's resident memory.
    """
    import contextlib
    import ctypes
    import ctypes.util

    # Elsewhere (macOS, Windows, musl) there is no malloc_trim: nothing to do.
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


def warm_up(engines: Engines) -> None:
    """Run each model once so the first real turn does not pay for lazy initialisation,
    and leave the system prompt read into the LLM's cache."""
    engines.recognizer.warm_up()
    for _ in engines.tts.synthesize("Ready."):
        pass
    engines.chat.reply("Hi", lambda _text: None, cancelled=_after_calls(3))
    engines.chat.conversation.clear()
    engines.chat.prefill()


def _after_calls(n: int) -> Callable[[], bool]:
    calls = iter(range(n))
    return lambda: next(calls, None) is None
