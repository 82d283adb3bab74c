"""Loading the interpreter's models once, before any audio flows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assistant.asr import WhisperRecognizer
from assistant.compute import one_blas_thread
from assistant.config import AssistantConfig
from assistant.interpret.translators.base import Translator
from assistant.interpret.translators.factory import create_translator
from assistant.model_store import ModelStore
from assistant.tts.voices import Voice, voice_for_language


@dataclass
class InterpreterEngines:
    recognizer: WhisperRecognizer
    translator: Translator
    voice: Voice

    def describe(self) -> str:
        voice = self.voice.description
        return f"{self.translator.describe()} · voice: {voice}"

    def close(self) -> None:
        self.translator.close()


def load_interpreter_engines(
    config: AssistantConfig,
    store: ModelStore | None = None,
    progress: Callable[[str], None] = lambda message: None,
    recognizer: WhisperRecognizer | None = None,
    loaded_voice=None,
) -> InterpreterEngines:
    """Slow: never on a GUI thread. ``recognizer`` and ``loaded_voice`` (the assistant's,
    already loaded) are reused rather than loaded a second time."""
    config.validate()
    store = store or ModelStore()
    one_blas_thread()
    if recognizer is None:
        progress("loading speech recognition")
        recognizer = WhisperRecognizer(store.whisper_dir(config.asr.model), config.asr)
        recognizer.warm_up()
    progress("loading the translator")
    translator = create_translator(config, store, recognizer)
    progress("loading the voice")
    try:
        voice = voice_for_language(config.interpret.target, config.tts, store, loaded=loaded_voice)
    except BaseException:
        translator.close()
        raise
    return InterpreterEngines(recognizer, translator, voice)
