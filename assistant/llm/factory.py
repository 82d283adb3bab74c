"""Choosing and building the chat backend that ``llm.backend`` names."""

from __future__ import annotations

from assistant.config import LlmConfig
from assistant.errors import ConfigError
from assistant.llm.base import ChatBackend
from assistant.model_store import ModelStore


def backend_name(config: LlmConfig) -> str:
    """The backend ``auto`` stands for: the server when a URL is set, else transformers."""
    if config.backend != "auto":
        return config.backend
    return "openai" if config.url else "transformers"


def create_chat(config: LlmConfig, store: ModelStore) -> ChatBackend:
    name = backend_name(config)
    if name == "openai":
        if not config.url:
            raise ConfigError("llm.backend is 'openai' but no llm.url (or --llm-url) is set")
        if config.fallback_to_local:
            from assistant.llm.fallback import FallbackChat

            return FallbackChat(config, store)
        from assistant.llm.openai_chat import OpenAIChat

        return OpenAIChat(config, store)
    if name == "llama.cpp":
        from assistant.llm.llama_cpp_chat import LlamaCppChat

        return LlamaCppChat(config, store)
    from assistant.llm.transformers_chat import TransformersChat

    return TransformersChat(config, store)
