"""Choosing and building the chat backend that ``llm.backend`` names."""

from __future__ import annotations

from assistant.config import LlmConfig
from assistant.errors import ConfigError
from assistant.llm.base import ChatBackend
from assistant.model_store import ModelStore


def backend_name(config: LlmConfig) -> str:
    """The backend ``auto`` stands for: the server when a URL is set; llama.cpp for a
    GGUF model on a CPU without native bfloat16; transformers otherwise."""
    if config.backend != "auto":
        return config.backend
    if config.url:
        return "openai"
    return "llama.cpp" if llama_cpp_is_faster_here(config) else "transformers"


def llama_cpp_is_faster_here(config: LlmConfig) -> bool:
    """Without native bfloat16, transformers computes the small model in float32, which
    reads four times the bytes of int8 for every token; llama.cpp runs the GGUF's own
    quantised kernels on any AVX2 CPU. With bfloat16 (int8 weights) the two are alike
    and transformers stays. Settings that only the transformers backend knows (a chosen
    path or quantisation, a GPU) keep it too."""
    import importlib.util

    if config.path != "auto" or config.quantize != "auto" or config.device == "cuda":
        return False
    if config.model != "default" and not config.model.endswith(".gguf"):
        return False
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    from assistant.compute import cuda_device_count

    if config.device == "auto" and cuda_device_count() > 0:
        return False
    if cpu_lacks_bfloat16():
        return True  # decided without importing torch, which llama.cpp does not need
    from assistant.llm.int8_weights import int8_supported

    return not int8_supported()


def cpu_lacks_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the processor's own flags show no native bfloat16 (Linux); False when
    they show it or cannot be read, and torch then decides (it also honours limits such
    as ONEDNN_MAX_CPU_ISA)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as lines:
            flags = next((line for line in lines if line.startswith("flags")), "")
    except OSError:
        return False
    return bool(flags) and not {"avx512_bf16", "amx_bf16"} & set(flags.split())


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
