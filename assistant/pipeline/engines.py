"""Loading every model once, before any audio flows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assistant.asr import WhisperRecognizer
from assistant.config import AssistantConfig
from assistant.llm import ChatModel
from assistant.model_store import ModelStore
from assistant.tts import TtsEngine, create_engine


@dataclass
class Engines:
    recognizer: WhisperRecognizer
    chat: ChatModel
    tts: TtsEngine


def load_engines(
    config: AssistantConfig,
    store: ModelStore | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> Engines:
    """Load (and on first run prepare) all models; slow, so never call it on a GUI thread."""
    store = store or ModelStore()
    progress("loading speech recognition")
    recognizer = WhisperRecognizer(store.whisper_dir(config.asr.model), config.asr)
    progress("loading the language model")
    chat = ChatModel(config.llm, store)
    progress("loading the voice")
    tts = create_engine(config.tts, store)
    engines = Engines(recognizer, chat, tts)
    progress("warming up")
    warm_up(engines)
    return engines


def warm_up(engines: Engines) -> None:
    """Run each model once so the first real turn does not pay for lazy initialisation."""
    import numpy as np

    engines.recognizer.transcribe(np.zeros(16000, dtype=np.float32), language="en")
    for _ in engines.tts.synthesize("Ready."):
        pass
    ids = engines.chat.prompt_ids("Hi")
    import torch

    with torch.inference_mode():
        engines.chat.model(input_ids=ids.to(engines.chat.device))
