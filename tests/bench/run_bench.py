"""``make bench``: per-stage latency of the live pipeline on the default models.

Each question is spoken by espeak-ng, fed through the real pipeline at real-time pace
(file source, file sink) and timed by the pipeline's own stage marks. Prints a table per
question and the medians and p90, and writes ``docs/bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from assistant.audio.sinks import FileSink  # noqa: E402
from assistant.audio.sources import FileSource  # noqa: E402
from assistant.config import AssistantConfig  # noqa: E402
from assistant.pipeline import load_engines  # noqa: E402
from assistant.session import answer_file  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "How many days are there in a week?",
    "Tell me a fun fact about the ocean.",
    "What should I cook for dinner tonight?",
    "Why is the sky blue?",
]
STAGES = ["endpoint", "asr", "llm_first_token", "llm_first_phrase", "tts_first_audio"]
COLUMNS = [*STAGES, "voice_to_voice"]


def speak(text: str, path: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return path


def one_turn(config: AssistantConfig, engines, wav: Path) -> dict:
    sink = FileSink(sample_rate=engines.tts.sample_rate)
    record = answer_file(config, engines, FileSource(wav, realtime=True), sink)
    if record is None or not record.timings_ms:
        raise SystemExit(f"bench: no answer to {wav.name}")
    return {"transcript": record.transcript, "reply": record.reply, **record.timings_ms}


def summary(rows: list[dict]) -> dict:
    out = {}
    for column in COLUMNS:
        values = [r[column] for r in rows if r.get(column) is not None]
        out[column] = {
            "p50": round(float(np.median(values)), 1),
            "p90": round(float(np.percentile(values, 90)), 1),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2, help="rounds over the questions")
    parser.add_argument("--output", type=Path, default=Path("docs/bench.json"))
    args = parser.parse_args()
    config = AssistantConfig()
    start = time.monotonic()
    engines = load_engines(config)
    load_s = time.monotonic() - start
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wavs = [speak(q, Path(tmp) / f"q{i}.wav") for i, q in enumerate(QUESTIONS)]
        one_turn(config, engines, wavs[0])  # warm-up, not counted
        print(f"{'question':<42}" + "".join(f"{c:>17}" for c in COLUMNS))
        for _ in range(args.repeat):
            for question, wav in zip(QUESTIONS, wavs, strict=True):
                engines.chat.conversation.clear()
                row = {"question": question, **one_turn(config, engines, wav)}
                rows.append(row)
                print(f"{question[:41]:<42}" + "".join(f"{row[c] or 0:>17.0f}" for c in COLUMNS))
    stats = summary(rows)
    print(f"{'median (ms)':<42}" + "".join(f"{stats[c]['p50']:>17.0f}" for c in COLUMNS))
    print(f"{'p90 (ms)':<42}" + "".join(f"{stats[c]['p90']:>17.0f}" for c in COLUMNS))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"models loaded in {load_s:.1f} s; peak resident memory {rss_mb:.0f} MB")
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "models": "whisper-base int8, SmolLM2-135M-Instruct float32, piper en_US-joe-medium",
        "turns": len(rows),
        "voice_to_voice_p50_ms": stats["voice_to_voice"]["p50"],
        "stages_ms": stats,
        "load_s": round(load_s, 1),
        "peak_rss_mb": round(rss_mb),
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
