"""Piper, in-process (onnxruntime), one voice loaded once."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from assistant.config import TtsConfig
from assistant.errors import ModelError
from assistant.model_store import ModelStore


class PiperEngine:
    def __init__(self, config: TtsConfig, store: ModelStore) -> None:
        from piper import PiperVoice, SynthesisConfig

        model, voice_config = store.piper_voice(config.voice)
        try:
            self.voice = PiperVoice.load(model, config_path=voice_config)
        except Exception as exc:  # onnxruntime and json raise a zoo of types for a bad file
            raise ModelError(f"cannot load the Piper voice {model}: {exc}") from None
        self.sample_rate = self.voice.config.sample_rate
        self._synthesis = SynthesisConfig(length_scale=1.0 / max(0.25, config.speed))

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for chunk in self.voice.synthesize(text, syn_config=self._synthesis):
            yield chunk.audio_float_array.astype(np.float32, copy=False)
