"""Typed settings for every stage, loadable from a TOML file.

One dataclass per stage keeps each worker's knobs next to each other and lets the CLI
and the window override single fields without knowing the rest.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import platformdirs

from assistant.errors import ConfigError

APP_NAME = "voice-assistant"

Device = Literal["auto", "cpu", "cuda"]


@dataclass
class AudioConfig:
    input_device: str | int | None = None  # None: the system default
    output_device: str | int | None = None
    sample_rate: int = 16000  # what VAD and ASR consume
    block_ms: int = 32  # one Silero VAD window at 16 kHz


@dataclass
class VadConfig:
    mode: Literal["hands-free", "push-to-talk"] = "hands-free"
    threshold: float = 0.5
    min_speech_ms: int = 200  # shorter bursts are noise, not a turn
    end_silence_ms: int = 600  # silence that ends a turn
    # Silence that ends a turn once the speculative transcript reads as a finished sentence
    # (it ends in . ? or !); 0 always waits for end_silence_ms. Needs speculation on.
    finished_silence_ms: int = 300
    # After this much silence the reply is prepared speculatively (transcribed, generated,
    # synthesised) while the end of the turn is confirmed; 0 turns it off. One VAD window:
    # a quiet window inside a word starts an attempt that speech then drops, and the
    # recogniser abandons it after its encoder pass, so it holds up the real one at most
    # that long (bench: 120 -> 64 ms saved ~40 ms voice-to-voice, 64 -> 32 another ~25).
    speculate_after_ms: int = 32
    pre_roll_ms: int = 500  # audio kept from before speech started, so the first syllable survives
    max_utterance_s: float = 90.0  # a turn is cut here even if the user keeps talking
    barge_in: bool = True  # speech while the assistant talks interrupts it


@dataclass
class AsrConfig:
    model: str = "default"  # "default" (embedded Whisper base) or a CTranslate2 model folder
    device: Device = "auto"
    compute_type: str = "auto"  # auto: float16 on CUDA, int8 on CPU
    language: str | None = None  # None: detect
    task: Literal["transcribe", "translate"] = "transcribe"
    beam_size: int = 1
    # 0: with a fitted window on a CPU, decoding on 1 thread and encoding on up to 4 (a
    # second copy of the model, ~110 MB); else CTranslate2's default. N: N for both.
    cpu_threads: int = 0
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    # Encoder window for live turns. "fit": the utterance plus 2 s (at least 8 s) instead of
    # Whisper's fixed 30 s, ~3.5x faster on a CPU for a slightly higher word error rate;
    # "full": always 30 s; "auto": fit on the CPU, full on a GPU. Files always use 30 s.
    window: Literal["auto", "fit", "full"] = "auto"


@dataclass
class LlmConfig:
    # "auto": the server at ``url`` when one is set, else the local transformers model;
    # "llama.cpp" runs the GGUF file itself (needs llama-cpp-python); "openai": any
    # OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, transformers serve).
    backend: Literal["auto", "transformers", "llama.cpp", "openai"] = "auto"
    model: str = (
        "default"  # "default" (embedded SmolLM2-135M), a transformers folder or a .gguf file
    )
    device: Device = "auto"
    # transformers only. "fast": the lean one-token step (and int8 weights where the CPU
    # has native bfloat16); "stock": transformers' own forward; "auto": fast where the
    # model allows it, stock otherwise or if the fast path fails at run time.
    path: Literal["auto", "fast", "stock"] = "auto"
    # OpenAI-compatible server: base URL (e.g. http://127.0.0.1:8000/v1) and the served
    # model name. The API key comes from VOICE_ASSISTANT_API_KEY or the OS keyring only.
    url: str = ""
    served_model: str = ""
    request_timeout_s: float = 20.0  # no first token (or no next token) for this long fails
    fallback_to_local: bool = False  # answer with the local model when the server fails
    system_prompt: str = (
        "You are a friendly voice assistant running on the user's own computer. "
        "Answer in one or two short spoken sentences. Do not use lists, markdown or emoji."
    )
    max_new_tokens: int = 96
    context_tokens: int = 1536  # prompt budget: the oldest turns are dropped past it
    temperature: float = 0.0  # 0: greedy
    threads: int = 0  # 0: torch default
    # "auto": int8 weights with bfloat16 activations on CPUs that run them natively
    # (~2.6x faster decoding, the float model's next token >= 90% of the time), else
    # float32; "none": never quantise.
    quantize: Literal["auto", "int8", "none"] = "auto"


@dataclass
class TtsConfig:
    engine: Literal["piper"] = "piper"
    voice: str = "default"  # "default" (embedded Piper joe) or a Piper .onnx file
    speed: float = 1.0
    min_phrase_chars: int = 24  # a clause shorter than this waits for more text
    max_phrase_chars: int = 160  # longer text is cut at the last space
    # The reply's first phrase ends sooner, so the user hears it sooner: at any clause
    # break, before a word like "in" or "because" once 3 words precede it, or after this
    # many words. 0: it waits for a sentence end or a long clause like the others.
    first_phrase_words: int = 8


@dataclass
class AssistantConfig:
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)

    @classmethod
    def load(cls, path: Path | None = None) -> AssistantConfig:
        """Read settings from ``path`` (or the user's config file if it exists)."""
        if path is None:
            path = default_config_path()
            if not path.exists():
                return cls()
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AssistantConfig:
        config = cls()
        for section, values in data.items():
            target = getattr(config, section, None)
            if target is None or not dataclasses.is_dataclass(target):
                raise ConfigError(f"unknown config section [{section}]")
            if not isinstance(values, dict):
                raise ConfigError(f"config section [{section}] must be a table")
            known = {f.name for f in dataclasses.fields(target)}
            for key, value in values.items():
                if key not in known:
                    raise ConfigError(f"unknown setting {section}.{key}")
                setattr(target, key, value)
        return config


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def cache_dir() -> Path:
    """Where prepared models live; ``VOICE_ASSISTANT_CACHE_DIR`` overrides it."""
    override = os.environ.get("VOICE_ASSISTANT_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME))
