"""Building the translator ``interpret.engine`` names."""

from __future__ import annotations

from assistant.config import AssistantConfig, InterpretConfig
from assistant.errors import ConfigError
from assistant.interpret.languages import language_name
from assistant.interpret.translators.auto import AutoTranslator
from assistant.interpret.translators.base import Translator
from assistant.interpret.translators.whisper_task import WhisperTranslator
from assistant.model_store import ModelStore

# Directions the default translation LLM (Gemma 3 270M) is trusted with: measured in
# tests/bench/translation_quality.py (docs/performance.md has the figures).
TRUSTED_LLM = frozenset({("fr", "en"), ("de", "en"), ("es", "en"), ("zh", "en")})


def check_engine(interpret: InterpretConfig) -> None:
    """The engine's own limits, checked before any model loads."""
    if interpret.engine == "whisper" and interpret.target != "en":
        raise ConfigError(
            f"the whisper engine translates into English only, not into "
            f"{language_name(interpret.target)}: choose llm, mt or auto"
        )
    if interpret.engine == "mt" and not interpret.mt_model:
        raise ConfigError(
            "the mt engine needs a model: set interpret.mt_model to a Marian/OPUS-MT, "
            "NLLB or M2M100 folder (transformers format)"
        )


def create_translator(config: AssistantConfig, store: ModelStore, recognizer) -> Translator:
    interpret = config.interpret
    check_engine(interpret)
    engine = interpret.engine
    if engine == "whisper":
        return WhisperTranslator(recognizer)
    if engine == "mt":
        return _mt(config)
    if engine == "llm":
        return _llm(config, store)
    mt = _mt(config) if interpret.mt_model else None
    default_llm = interpret.llm_model == "default" and not interpret.llm_url
    return AutoTranslator(
        mt=mt,
        llm=_llm(config, store),
        whisper=WhisperTranslator(recognizer),
        # a model the user chose (or a server) is trusted with every direction it takes
        trusted=TRUSTED_LLM if default_llm else None,
    )


def _mt(config: AssistantConfig) -> Translator:
    from assistant.interpret.translators.mt import load_mt_translator

    return load_mt_translator(config.interpret.mt_model, config.interpret.max_new_tokens)


def _llm(config: AssistantConfig, store: ModelStore) -> Translator:
    from assistant.interpret.translators.llm import load_llm_translator

    return load_llm_translator(config, store)
