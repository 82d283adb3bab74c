"""A long live-interpreter session: the lag session's sentences (interpret_lag.py) looped
for N minutes through one Interpreter at real-time pace (English -> French, Gemma, speech
on into a null sink so that no audio piles up in the process).

Reports resident memory every ~30 s, the lags per segment over time (medians of the first
and last third of the segments), segments heard (sentences played) vs closed by the VAD
vs captioned vs translated vs spoken, and errors.

    .venv/bin/python tests/bench/interpret_soak.py --minutes 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import interpret_lag as lag  # noqa: E402  (puts the repository on sys.path)
from memory import peak_rss_mb, rss_mb  # noqa: E402

THIRDS_OF = ("partial_p50", "caption", "translation", "speech")


class RssSampler(threading.Thread):
    """RSS every ``every_s``, with the CPU other processes used meanwhile (in cores): a
    run disturbed by outside load shows it."""

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.every_s, self.samples, self.stop = every_s, [], threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        hz, last, at = os.sysconf("SC_CLK_TCK"), lag.cpu_jiffies(), time.monotonic()
        while True:
            now, jiffies = time.monotonic(), lag.cpu_jiffies()
            outside = (jiffies[0] - last[0]) - (jiffies[1] - last[1])
            self.samples.append(
                {
                    "t_s": round(now - self.t0, 1),
                    "rss_mb": rss_mb(),
                    "outside_cpu_cores": round(outside / hz / max(now - at, 1e-3), 2),
                }
            )
            last, at = jiffies, now
            if self.stop.wait(self.every_s):
                return


def thirds(rows: list[dict], key: str) -> list[float | None]:
    values = [r[key] for r in rows if r.get(key) is not None]
    n = len(values)
    parts = [values[i * n // 3 : (i + 1) * n // 3] for i in range(3)]
    return [round(float(np.median(p))) if p else None for p in parts]


def soak(config, engines, minutes: float, report=print) -> dict:
    """One Interpreter hearing the sentences in a loop for ``minutes``."""
    timer = lag.WordTimer()
    texts = lag.sentences("en")
    with tempfile.TemporaryDirectory(prefix="interpret-soak-") as tmp:
        clip_list = lag.clips(texts, lag.ENGLISH_VOICES, Path(tmp))
    timed = [timer.words(c, "en") for c in clip_list]
    del timer
    one_round = sum(c.size for c in clip_list) / lag.RATE + len(clip_list) * 1.0
    rounds = max(1, int(np.ceil(60 * minutes / one_round)))
    audio, words = lag.session(clip_list * rounds, timed * rounds, gap_s=1.0)
    report(f"interpreter soak: {rounds} rounds, {audio.size / lag.RATE / 60:.1f} min of speech")
    from assistant.audio.sinks import NullSink

    sampler = RssSampler()
    rss_loaded = rss_mb()
    sampler.start()
    started = time.monotonic()
    try:
        log, t0, left, closed = lag.run_session(
            config, engines, audio, sink=NullSink(engines.voice.engine.sample_rate)
        )
    finally:
        sampler.stop.set()
        sampler.join()
    elapsed = time.monotonic() - started
    result = lag.analyse(log, t0, words)
    rows = result.pop("segments")
    rss = [s["rss_mb"] for s in sampler.samples]
    half = rss[len(rss) // 2 :]
    return {
        "minutes": round(elapsed / 60, 1),
        "audio_minutes": round(audio.size / lag.RATE / 60, 1),
        "engines": engines.describe(),
        "segments_heard": len(clip_list) * rounds,
        "segments_closed_by_vad": closed,
        "segments_captioned": result["segments_captioned"],
        "segments_translated": result["segments_translated"],
        "segments_spoken": result["segments_spoken"],
        "untranslated": [r["text"] for r in rows if r.get("translation") is None][:10],
        "errors": log.errors[:10],
        "errors_total": len(log.errors),
        "not_stopped": left,
        "lags_ms": {k: result[k] for k in result if k.endswith("_ms")},
        "thirds_p50_ms": {k: thirds(rows, k) for k in THIRDS_OF},
        "rss_models_loaded_mb": rss_loaded,
        "rss_start_mb": rss[0],
        "rss_end_mb": rss[-1],
        "rss_max_mb": max(rss),
        "growth_mb": round(rss[-1] - rss[0], 1),
        "growth_second_half_mb": round(half[-1] - half[0], 1),
        "peak_rss_mb": peak_rss_mb(),
        "outside_cpu_cores_max": max((s["outside_cpu_cores"] for s in sampler.samples), default=0),
        "rss_samples": sampler.samples,
        "segments": [
            {
                **{k: r.get(k) for k in ("segment", "partial_p50", "caption", "translation")},
                **{k: r.get(k) for k in ("speech", "text", "translated", "pipeline")},
            }
            for r in rows
        ],
    }


def measure(minutes: float, report=print) -> dict:
    from assistant.interpret.engines import load_interpreter_engines

    config = lag.configured("en", "fr", "auto")
    engines = load_interpreter_engines(config)
    try:
        return soak(config, engines, minutes, report)
    finally:
        engines.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    result = measure(args.minutes)
    import report

    report.print_interpreter({"soak": result})
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
