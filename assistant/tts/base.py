from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from assistant.config import TtsConfig
from assistant.model_store import ModelStore


class TtsEngine(Protocol):
    """Speaks one phrase at a time; yields audio as soon as each piece is ready.

    Engines are loaded once and reused: a new process or session per sentence costs
    more than the synthesis itself.
    """

    sample_rate: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Mono float32 chunks at ``sample_rate``."""


def create_engine(config: TtsConfig, store: ModelStore) -> TtsEngine:
    if config.engine == "piper":
        from assistant.tts.piper_engine import PiperEngine

        return PiperEngine(config, store)
    from assistant.errors import ConfigError

    raise ConfigError(f"unknown TTS engine {config.engine!r}; available: piper")
