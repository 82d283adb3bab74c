"""The naive sequential design as a newcomer would write it: the libraries' own calls.

naive.py runs the naive order of stages on this app's engines, so it carries every
engine-level speed-up (fitted Whisper window, int8 LLM with the lean decoding step, the
system prompt kept read, split Piper voice). The issue's naive design (2.5 s median on
these machines) has none of them: it is the stages the libraries give you, one after the
other. This is that reference, with the same model files and the same settings where the
app has a setting (beam size, greedy decoding, system prompt, reply length):

- faster-whisper ``WhisperModel(..., compute_type="int8").transcribe`` (30 s window);
- transformers ``AutoModelForCausalLM.from_pretrained(gguf_file=...)`` and ``generate``;
- piper ``PiperVoice.synthesize`` of the whole reply;

after the same Silero endpointer and silence as naive.py. Each model is run once before
the first timed turn, as any app would at start.

It runs in its own process, so that its float32 LLM and torch thread settings neither
share the app's engines nor count in the bench's memory: ``run_bench.py`` starts it,
writes one WAV path per line to its stdin and reads one JSON row per line back, so its
turns interleave with the other designs' like theirs do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from naive import COLUMNS, sequential_turn

from assistant.config import AssistantConfig
from assistant.model_store import ModelStore

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
__all__ = ["COLUMNS", "StockProcess"]


class StockModels:
    def __init__(self, config: AssistantConfig, store: ModelStore) -> None:
        import torch
        from faster_whisper import WhisperModel
        from piper import PiperVoice
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.whisper = WhisperModel(
            str(store.whisper_dir(config.asr.model)), device="cpu", compute_type="int8"
        )
        folder, gguf = store.llm_source(config.llm.model)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
        self.llm = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf).eval()
        self.voice = PiperVoice.load(*store.piper_voice(config.tts.voice))
        self._torch = torch

    def transcribe(self, audio: np.ndarray) -> str:
        segments, _ = self.whisper.transcribe(
            audio,
            beam_size=self.config.asr.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        return " ".join(s.text.strip() for s in segments).strip()

    def reply(self, text: str) -> str:
        messages = [
            {"role": "system", "content": self.config.llm.system_prompt},
            {"role": "user", "content": text},
        ]
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with self._torch.inference_mode():
            output = self.llm.generate(
                **inputs, max_new_tokens=self.config.llm.max_new_tokens, do_sample=False
            )
        new = output[0, inputs["input_ids"].shape[1] :]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()

    def synthesize(self, text: str) -> np.ndarray:
        chunks = [c.audio_float_array for c in self.voice.synthesize(text)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    def warm_up(self) -> None:
        self.transcribe(np.zeros(16000, np.float32))
        self.reply("Hi")
        self.synthesize("Ready.")


def stock_turn(config: AssistantConfig, models: StockModels, wav: Path) -> dict:
    rate = models.voice.config.sample_rate
    return sequential_turn(
        config, wav, models.transcribe, models.reply, models.synthesize, rate, "stock naive design"
    )


class StockProcess:
    """The reference in a child process; ``turn(wav)`` runs one question there."""

    def __init__(self, config_path: Path | None) -> None:
        import subprocess

        command = [sys.executable, str(Path(__file__)), "--serve"]
        if config_path is not None:
            command += ["--config", str(config_path)]
        self._child = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._read()  # {"ready": ...} once loaded and warmed up

    def _read(self) -> dict:
        for line in self._child.stdout:  # a library's stray print is no reply
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"stock naive design exited ({self._child.wait()})")

    def turn(self, wav: Path) -> dict:
        self._child.stdin.write(f"{wav}\n")
        self._child.stdin.flush()
        row = self._read()
        if "error" in row:
            raise RuntimeError(f"stock naive design: {row['error']}")
        return row

    def close(self) -> None:
        self._child.stdin.close()
        self._child.wait(timeout=30)


def serve(config: AssistantConfig) -> None:
    """Load, warm up, then one turn per WAV path read from stdin, one JSON line each."""
    models = StockModels(config, ModelStore())
    models.warm_up()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            row = stock_turn(config, models, Path(line.strip()))
        except Exception as exc:  # reported to the bench, which stops with it
            row = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", required=True)
    parser.add_argument("--config", type=Path)
    args = parser.parse_args()
    serve(AssistantConfig.load(args.config) if args.config else AssistantConfig())
