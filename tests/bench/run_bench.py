"""``make bench``: voice-to-voice latency of the live pipeline, against references.

One run, same spoken questions (espeak-ng) and same loaded models throughout:

1. the live pipeline at real-time pace (file source, file sink), timed by its own marks;
2. the naive sequential design: fixed silence, whole transcript, whole reply, whole
   synthesis, then play; written with the libraries' own calls (naive_stock.py, in a child
   process: the issue's naive design), and the same order of stages on this app's engines
   (naive.py), which isolates what the pipeline's design adds to the engines' speed-ups;
3. the compute floor (floor.py): ASR + LLM to first phrase + TTS of it, each alone;
4. the vv-meter (vv.py) against ``voice-assistant listen`` through virtual audio devices,
   next to the pipeline in-process over the meter's own session (conversation kept) and
   the offsets between the two clocks' start and stop points (edges.py); ``--vv-timed``
   also splits the meter's figure with the app's own marks (listen_timed.py);
5. what checking the prepared models costs per start and in full (cache_check.py), and
   the echo canceller and barge-in policy in a simulated room (echo.py);
6. resident memory, and with ``--soak-minutes N`` RSS over N minutes of one live session
   (memory.py); without it the last soak in the output file is kept;
7. the live interpreter (issue #14): caption, translation and voice lag behind the speaker
   (interpret_lag.py), quality from speech per direction (interpret_quality.py), and with
   ``--interpret-soak-minutes N`` one N-minute session (interpret_soak.py; without it the
   last one in the output file is kept). ``--skip-interpreter`` keeps the previous section.

Prints tables and ratios, writes ``docs/bench.json`` and ``docs/latency.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import cache_check  # noqa: E402
import echo  # noqa: E402
import edges  # noqa: E402
import floor  # noqa: E402
import interpret_lag  # noqa: E402
import interpret_quality  # noqa: E402
import interpret_soak  # noqa: E402
import live  # noqa: E402
import naive  # noqa: E402
import naive_stock  # noqa: E402
import report  # noqa: E402
import vv  # noqa: E402
from inputs import QUESTIONS, question_wavs  # noqa: E402
from memory import peak_rss_mb, rss_mb, soak  # noqa: E402

from assistant.config import AssistantConfig  # noqa: E402
from assistant.pipeline import Engines, load_engines  # noqa: E402


def models(config: AssistantConfig, engines: Engines) -> dict[str, str]:
    def named(reference: str, default: str) -> str:
        return default if reference == "default" else reference

    rec = engines.recognizer
    return {
        "asr": f"{named(config.asr.model, 'Whisper base')} "
        f"(CTranslate2 {rec.model.model.compute_type}, {rec.device})",
        "llm": f"{named(config.llm.model, 'SmolLM2-135M-Instruct')} ({engines.chat.describe()})",
        "tts": f"{named(config.tts.voice, 'Piper en_US joe medium')} "
        f"({engines.tts.sample_rate} Hz)",
    }


def code_version() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=vv.REPO
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--", "assistant")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def forget_encoder_memo(engines: Engines) -> None:
    """Drop the recogniser's one-entry encoder memo (assistant/asr.py).

    It is keyed by the exact audio features, so without this the second design to hear the
    same WAV would skip the Whisper encoder, which no real user's new question allows.
    """
    model = engines.recognizer.model
    if hasattr(model, "_last"):
        model._last = None


def new_conversation(engines: Engines) -> None:
    """Put every model in the state a new conversation finds it in.

    The LLM's attention cache then holds only the system prompt and the user turn's
    opening, as after loading. Clearing the conversation alone left the cache holding the
    previous design's prompt, and the three designs hear the same question in a row, so
    the naive design and the floor found the question already read (~50 ms of prefill
    they never paid) while the pipeline, first after a different question, paid it.
    """
    engines.chat.conversation.clear()
    engines.chat.prefill()
    forget_encoder_memo(engines)


def measure_edges(
    config: AssistantConfig, engines: Engines, wavs: list[Path], floor_rows: list[dict]
) -> dict | None:
    """Offsets between the two clocks' start and stop points (edges.py), medians in ms."""
    if not vv.METER.is_file():
        return None
    meter = edges.meter_module(vv.METER)
    ends = [edges.speech_end_offset_ms(meter, config, wav) for wav in wavs]
    onsets = []
    for phrase in dict.fromkeys(row["first_phrase"] for row in floor_rows):
        first_chunk = next(iter(engines.tts.synthesize(phrase)))
        onsets.append(edges.reply_onset_offset_ms(meter, first_chunk, engines.tts.sample_rate))
    end_p50, onset_p50 = float(np.median(ends)), float(np.median(onsets))
    return {
        "speech_end_offset_ms": ends,
        "speech_end_offset_p50_ms": round(end_p50, 1),
        "reply_onset_offset_ms": onsets,
        "reply_onset_offset_p50_ms": round(onset_p50, 1),
        "expected_vv_minus_in_process_ms": round(end_p50 + onset_p50, 1),
    }


def config_toml(config: AssistantConfig) -> str:
    """``config`` as a settings file (only the sections' plain values)."""
    import dataclasses

    lines = []
    for section in dataclasses.fields(config):
        lines.append(f"[{section.name}]")
        for key, value in dataclasses.asdict(getattr(config, section.name)).items():
            if value is not None:
                lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def interpreter_section(args, previous: dict, started: datetime, code: str) -> dict:
    """Lag, quality and (``--interpret-soak-minutes``) soak of the live interpreter; the
    previous run's parts where this one skips them."""
    if args.skip_interpreter:
        print(f"\ninterpreter: skipped; keeping the one from {previous.get('date')}")
        return previous
    print("\ninterpreter: lag sessions, then quality from speech ...", flush=True)
    section = {
        "date": started.isoformat(timespec="seconds"),
        "code": code,
        "lag": interpret_lag.measure(),
        "quality": interpret_quality.measure(),
        "soak": previous.get("soak"),
    }
    if args.interpret_soak_minutes > 0:
        print(f"\ninterpreter soak: {args.interpret_soak_minutes:g} minutes ...", flush=True)
        section["soak"] = interpret_soak.measure(args.interpret_soak_minutes)
        section["soak"]["date"] = section["date"]
    report.print_interpreter(section)
    return section


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=2, help="rounds over the questions")
    parser.add_argument("--vv-repeat", type=int, default=2, help="vv-meter rounds (0: skip)")
    parser.add_argument(
        "--vv-timed", action="store_true", help="meter listen_timed.py, split the difference"
    )
    parser.add_argument("--soak-minutes", type=float, default=0, help="RSS soak after the rest")
    parser.add_argument(
        "--interpret-soak-minutes", type=float, default=0, help="interpreter soak, minutes"
    )
    parser.add_argument(
        "--skip-interpreter", action="store_true", help="keep the last interpreter section"
    )
    parser.add_argument("--config", type=Path, help="settings TOML (default: built-in)")
    parser.add_argument(
        "--llm-backend", choices=["transformers", "llama.cpp", "openai"], help="force a backend"
    )
    parser.add_argument(
        "--llm-path", choices=["auto", "fast", "stock"], help="transformers: force a path"
    )
    parser.add_argument(
        "--quantize",
        choices=["auto", "int8", "none"],
        help="transformers: 'none' forces float32 weights, the path of a CPU without bfloat16",
    )
    parser.add_argument("--output", type=Path, default=vv.REPO / "docs" / "bench.json")
    parser.add_argument("--chart", type=Path, default=vv.REPO / "docs" / "latency.png")
    args = parser.parse_args()

    began = time.monotonic()
    code = code_version()  # the code this run loaded, even if it changes while it runs
    config = AssistantConfig.load(args.config) if args.config else AssistantConfig()
    forced = {
        "backend": args.llm_backend,
        "path": args.llm_path,
        "quantize": args.quantize,
    }
    forced = {key: value for key, value in forced.items() if value}
    settings_dir = tempfile.TemporaryDirectory(prefix="bench-settings-")
    if forced:  # the child processes (naive design, vv-meter) read the same settings
        for key, value in forced.items():
            setattr(config.llm, key, value)
        args.config = Path(settings_dir.name) / "config.toml"
        args.config.write_text(config_toml(config), encoding="utf-8")
    started = datetime.now().astimezone()
    load_avg = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        wavs = question_wavs(Path(tmp))
        start = time.monotonic()
        engines = load_engines(config)
        load_s = time.monotonic() - start
        rss_loaded = rss_mb()
        print(f"models loaded in {load_s:.1f} s; resident memory {rss_loaded:.0f} MiB")
        stock = naive_stock.StockProcess(args.config)  # loads its own models, then waits

        def clean(turn):  # every turn starts afresh: the same audio is heard three times
            def run(wav: Path) -> dict:
                new_conversation(engines)
                return turn(config, engines, wav)

            return run

        live_turn, naive_turn, floor_turn = (
            clean(live.live_turn), clean(naive.naive_turn), clean(floor.floor_turn)
        )  # fmt: skip
        live_turn(wavs[0])  # warm-up, not counted
        live_rows: list[dict] = []
        naive_rows: list[dict] = []
        engines_naive_rows: list[dict] = []
        floor_rows: list[dict] = []
        print(
            "\nquestion                                  pipeline     naive"
            "  naive on app engines     floor  (ms)"
        )
        for _ in range(args.repeat):  # interleaved, so that any outside load hits all three
            for question, wav in zip(QUESTIONS, wavs, strict=True):
                live_rows.append({"question": question, **live_turn(wav)})
                naive_rows.append({"question": question, **stock.turn(wav)})
                engines_naive_rows.append({"question": question, **naive_turn(wav)})
                floor_rows.append({"question": question, **floor_turn(wav)})
                print(
                    f"{question[:40]:<40}{live_rows[-1]['voice_to_voice']:>10.0f}"
                    f"{naive_rows[-1]['voice_to_voice']:>10.0f}"
                    f"{engines_naive_rows[-1]['voice_to_voice']:>22.0f}"
                    f"{floor_rows[-1]['floor']:>10.0f}",
                    flush=True,
                )
        stock.close()
        rss_after = rss_mb()
        clock_edges = measure_edges(config, engines, wavs, floor_rows)
        live_stats = report.summarise(live_rows, live.COLUMNS)
        naive_stats = report.summarise(naive_rows, naive_stock.COLUMNS)
        engines_naive_stats = report.summarise(engines_naive_rows, naive.COLUMNS)
        floor_stats = report.summarise(floor_rows, floor.COLUMNS)
        report.print_table("live pipeline", live_rows, live.COLUMNS, live_stats)
        report.print_table(
            "naive sequential design, the libraries' own calls",
            naive_rows,
            naive_stock.COLUMNS,
            naive_stats,
        )
        report.print_table(
            "naive sequential design on the app's engines",
            engines_naive_rows,
            naive.COLUMNS,
            engines_naive_stats,
        )
        report.print_table(
            "compute floor, each model alone", floor_rows, floor.COLUMNS, floor_stats
        )

        # The vv-meter's session in-process: one conversation, the same order of questions
        # (one warm-up, then every question vv_repeat times), file source and sink.
        session_rows: list[dict] = []
        new_conversation(engines)
        plan = [*wavs[:1], *wavs * args.vv_repeat] if args.vv_repeat > 0 else []
        for i, wav in enumerate(plan):
            forget_encoder_memo(engines)
            row = live.live_turn(config, engines, wav)
            if i:  # the first is the warm-up, as in the meter
                session_rows.append({"question": QUESTIONS[wavs.index(wav)], **row})
        session_stats = report.summarise(session_rows, live.COLUMNS)
        if session_rows:
            report.print_table(
                "live pipeline, one session (conversation kept, as under the vv-meter)",
                session_rows,
                live.COLUMNS,
                session_stats,
            )

        meter = vv.unavailable("skipped (--vv-repeat 0)")
        if args.vv_repeat > 0:
            print(
                f"\nvv-meter: {len(wavs)} questions x {args.vv_repeat} + 1 warm-up ...", flush=True
            )
            meter = vv.run_meter(
                wavs, repeat=args.vv_repeat, timed=args.vv_timed, config=args.config
            )
            for row in meter.get("rows", []):
                latency = row["latency_ms"]
                shown = f"{latency:.0f}" if latency is not None else "-"
                print(f"  {row['query']:<10}{shown:>8} ms  {' '.join(row['flags'])}")

        soaked = None
        if args.soak_minutes > 0:
            print(f"\nsoak: {args.soak_minutes:g} minutes of turns ...", flush=True)
            soaked = soak(config, engines, wavs, args.soak_minutes)
            soaked["date"] = started.isoformat(timespec="seconds")
            soaked["code"] = code

    previous = json.loads(args.output.read_text()) if args.output.is_file() else {}
    if soaked is None and previous.get("soak"):
        soaked = previous["soak"]
        print(f"\nsoak: none this run; keeping the one from {soaked.get('date')}")
    interpreter = interpreter_section(args, previous.get("interpreter") or {}, started, code)

    v2v = live_stats["voice_to_voice"]["p50"]
    naive_v2v = naive_stats["voice_to_voice"]["p50"]
    engines_naive_v2v = engines_naive_stats["voice_to_voice"]["p50"]
    floor_p50 = floor_stats["floor"]["p50"]
    vv_p50 = meter["p50_ms"]
    session_v2v = session_stats["voice_to_voice"]["p50"]
    difference = round(vv_p50 - v2v, 1) if vv_p50 is not None and v2v is not None else None
    session_difference = (
        round(vv_p50 - session_v2v, 1) if vv_p50 is not None and session_v2v is not None else None
    )
    result = {
        "date": started.isoformat(timespec="seconds"),
        "code": code,
        "machine": report.machine(),
        "load_avg_1m_at_start": round(load_avg, 2),
        "models": models(config, engines),
        "llm_path": engines.chat.describe(),
        "forced": forced,
        "turns": len(live_rows),
        "voice_to_voice_p50_ms": v2v,
        "voice_to_voice_p90_ms": live_stats["voice_to_voice"]["p90"],
        "naive_voice_to_voice_p50_ms": naive_v2v,
        "naive_app_engines_voice_to_voice_p50_ms": engines_naive_v2v,
        "floor_p50_ms": floor_p50,
        "vv_meter_p50_ms": vv_p50,
        "vv_meter_minus_in_process_ms": difference,
        "session_voice_to_voice_p50_ms": session_v2v,
        "vv_meter_minus_session_ms": session_difference,
        "ratio_vs_naive": ratio(v2v, naive_v2v),
        "ratio_vs_naive_app_engines": ratio(v2v, engines_naive_v2v),
        "ratio_vs_floor": ratio(v2v, floor_p50),
        "goal_ms": report.GOAL_MS,
        "pipeline": {"stages_ms": live_stats, "rows": live_rows},
        "naive": {"stages_ms": naive_stats, "rows": naive_rows},
        "naive_app_engines": {"stages_ms": engines_naive_stats, "rows": engines_naive_rows},
        "floor": {"stages_ms": floor_stats, "rows": floor_rows},
        "session": {"stages_ms": session_stats, "rows": session_rows},
        "vv_meter": meter,
        "clock_edges": clock_edges,
        "memory": {
            "rss_models_loaded_mb": rss_loaded,
            "rss_after_bench_mb": rss_after,
            "peak_rss_mb": peak_rss_mb(),
            "listen_app_rss_max_mb": meter.get("app_rss_mb_max"),
        },
        "soak": soaked,
        "load_s": round(load_s, 1),
        "cache_checks_ms": cache_check.measure(),
        "echo": echo.measure(),
        "interpreter": interpreter,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    report.chart(result, args.chart)
    result["bench_s"] = round(time.monotonic() - began)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")

    report.print_summary(result)
    print(f"wrote {args.output} and {args.chart} in {result['bench_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
