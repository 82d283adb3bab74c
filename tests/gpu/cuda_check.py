"""The CUDA paths, checked on a lent GPU machine (never part of ``make test``).

The real weights do not fit the transfer to that machine, so both models are built here
with the default architectures (Whisper base, SmolLM2-135M) and random weights: the code
paths and the timings are those of the defaults, the words are not. Run from the repo root:

    python tests/gpu/cuda_check.py --assets DIR --out DIR

DIR (assets) holds ``whisper/`` (config.json, tokenizer.json, vocabulary.txt of the
default Whisper), ``llm/`` (config and tokenizer files of the default LLM) and
``question.wav``. Writes ``cuda_check.json`` into --out. faster-whisper imports PyAV,
which only decodes files; where it is missing (it is too big to carry) an empty module
stands in, and nothing here decodes a file with it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
try:
    import av  # noqa: F401
except ImportError:
    import types

    sys.modules["av"] = types.ModuleType("av")


def median_ms(fn, repeat: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


def build_whisper(assets: Path, work: Path) -> Path:
    """Random Whisper base, converted to CTranslate2 float16 like the shipped model."""
    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=51865,
        num_mel_bins=80,
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
    )
    hf = work / "whisper-hf"
    WhisperForConditionalGeneration(config).save_pretrained(hf)
    out = work / "whisper-ct2"
    spec = ctranslate2.converters.TransformersConverter(str(hf), load_as_float16=True)
    spec.convert(str(out), quantization="float16", force=True)
    (out / "vocabulary.json").unlink()  # a placeholder: the real vocabulary comes next
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(assets / "whisper" / name, out / name)
    return out


def build_llm(assets: Path, work: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(assets / "llm")
    out = work / "llm"
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    for item in (assets / "llm").iterdir():
        if item.name != "config.json":
            shutil.copy(item, out / item.name)
    return out


def check_asr(folder: Path, wav: Path) -> dict:
    import wave

    import numpy as np

    from assistant.asr import WhisperRecognizer
    from assistant.config import AsrConfig
    from assistant.errors import UserFacingError

    result: dict = {}
    recognizer = WhisperRecognizer(folder, AsrConfig(device="auto", language="en"))
    result["auto_device"] = recognizer.device
    result["compute_type"] = recognizer.model.model.compute_type
    result["cuda_problem"] = recognizer.cuda_problem
    try:
        WhisperRecognizer(folder, AsrConfig(device="cuda", language="en"))
        result["explicit_cuda"] = "loaded"
    except UserFacingError as exc:
        result["explicit_cuda"] = f"{type(exc).__name__}: {exc}"
    with wave.open(str(wav)) as file:  # 16-bit mono; soundfile is not on that machine
        rate = file.getframerate()
        pcm = np.frombuffer(file.readframes(file.getnframes()), np.int16)
    audio = np.interp(
        np.arange(0, pcm.size, rate / 16000), np.arange(pcm.size), pcm / 32768.0
    ).astype(np.float32)
    # Random weights decode garbage up to the recogniser's token guard: time it anyway,
    # and the encoder alone, which is the same work as with real weights.
    result["transcribe_ms"] = median_ms(lambda: recognizer.transcribe(audio))
    features = np.zeros((80, 3000), np.float32)
    model = recognizer.model

    def encode():
        model._last = None
        out = model.encode(features)
        np.asarray(out.to_device(__import__("ctranslate2").Device.cpu))

    result["encoder_30s_ms"] = median_ms(encode)
    return result


def check_llm(folder: Path) -> dict:
    import torch

    from assistant.config import LlmConfig
    from assistant.llm import torch_compat
    from assistant.llm.transformers_chat import TransformersChat
    from assistant.model_store import ModelStore

    chat = TransformersChat(
        LlmConfig(model=str(folder), device="auto", max_new_tokens=24), ModelStore()
    )
    result = {
        "device": chat.device,
        "precision": chat.precision,
        "attention": torch_compat.attention_implementation(chat.model),
    }

    def decode(context: int, tokens: int = 64) -> float:
        def work():
            chat._cache.clear()
            ids = list(range(100, 100 + context))
            logits = chat._run(ids)
            times = []
            for _ in range(tokens):
                ids.append(int(torch.argmax(logits)))
                start = time.perf_counter()
                logits = chat._run(ids)
                logits.cpu()
                times.append(time.perf_counter() - start)
            return round(1000 * statistics.median(times), 2)

        return chat._on_torch(work)

    result["ms_per_token_ctx64"] = decode(64)
    result["ms_per_token_ctx1000"] = decode(1000)
    result["ms_per_token_ctx64_again"] = decode(64)
    result["raw_forward_ms"] = chat._on_torch(raw_forward, chat)
    if chat.device == "cuda":  # ChatModel turns cuDNN's attention off (see there): compare
        result["ms_per_token_ctx500_unseen"] = decode(500)
        torch.backends.cuda.enable_cudnn_sdp(True)
        result["ms_per_token_ctx300_unseen_with_cudnn"] = decode(300)
        torch.backends.cuda.enable_cudnn_sdp(False)
    if chat.device == "cuda":
        chat._on_torch(profile_decode, chat)
    pieces: list[str] = []
    text, cancelled = chat.reply("How many days are in a week?", pieces.append)
    result["reply_pieces"] = len(pieces)
    chat.prefill()
    prompt = chat.prompt_ids("And in a year?")
    held = chat._cache.reuse(prompt)
    result["next_turn_reads_tokens"] = len(prompt) - held

    def agree():
        cached = chat._run(prompt).float()
        chat._cache.clear()
        fresh = chat._run(prompt).float()
        cosine = torch.nn.functional.cosine_similarity(cached, fresh, dim=0)
        return bool(cached.argmax() == fresh.argmax()), round(float(cosine), 5)

    result["cached_vs_fresh_argmax_same"], result["cached_vs_fresh_cosine"] = chat._on_torch(agree)
    stop_after = iter(range(3))
    _, cancelled = chat.reply("Count to fifty.", lambda _t: None, lambda: next(stop_after, 3) >= 3)
    result["cancel_stops_reply"] = cancelled
    return result


def raw_forward(chat) -> float:
    """One token through the model with no cache at a fixed length: the model's own cost."""
    import torch

    ids = torch.tensor([list(range(100, 164))], device=chat.device)

    def step():
        with torch.inference_mode():
            chat.model(input_ids=ids, logits_to_keep=1).logits.cpu()

    return median_ms(step, repeat=20)


def profile_decode(chat) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    ids = list(range(100, 164))
    chat._cache.clear()
    logits = chat._run(ids)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            ids.append(int(torch.argmax(logits)))
            logits = chat._run(ids)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    print(table, flush=True)


def environment() -> dict:
    import ctranslate2
    import torch
    import transformers

    info = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "ctranslate2": ctranslate2.__version__,
        "ctranslate2_cuda_devices": ctranslate2.get_cuda_device_count(),
        "torch_cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--assets", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cuda-check"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    report: dict = {"environment": environment()}
    print(json.dumps(report["environment"]), flush=True)
    wav = args.assets / "question.wav"
    for name, step in (
        ("asr", lambda: check_asr(build_whisper(args.assets, args.work), wav)),
        ("llm", lambda: check_llm(build_llm(args.assets, args.work))),
    ):
        start = time.perf_counter()
        try:
            report[name] = step()
        except Exception:
            report[name] = {"error": traceback.format_exc()}
        report[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(name, json.dumps(report[name], indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cuda_check.json").write_text(json.dumps(report, indent=1))
    return 0 if all("error" not in report[k] for k in ("asr", "llm")) else 1


if __name__ == "__main__":
    sys.exit(main())
