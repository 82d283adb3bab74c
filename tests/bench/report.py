"""Tables on stdout, the machine's description, and the latency chart."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

GOAL_MS = 800


def summarise(rows: list[dict], columns: list[str]) -> dict[str, dict[str, float | None]]:
    """Median and p90 of each column over the rows that have it."""
    out: dict[str, dict[str, float | None]] = {}
    for column in columns:
        values = [r[column] for r in rows if r.get(column) is not None]
        out[column] = {
            "p50": round(float(np.median(values)), 1) if values else None,
            "p90": round(float(np.percentile(values, 90)), 1) if values else None,
        }
    return out


def print_table(title: str, rows: list[dict], columns: list[str], stats: dict) -> None:
    width = max(17, *(len(c) + 2 for c in columns))
    print(f"\n== {title} (ms)")
    print(f"{'question':<40}" + "".join(f"{c:>{width}}" for c in columns))
    for row in rows:
        cells = "".join(
            f"{row[c]:>{width}.0f}" if row.get(c) is not None else f"{'-':>{width}}"
            for c in columns
        )
        print(f"{row['question'][:39]:<40}" + cells)
    for label, key in (("median", "p50"), ("p90", "p90")):
        cells = "".join(
            f"{stats[c][key]:>{width}.0f}" if stats[c][key] is not None else f"{'-':>{width}}"
            for c in columns
        )
        print(f"{label:<40}" + cells)


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    flags = next(
        (
            set(line.split(":", 1)[1].split())
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        ),
        set(),
    )
    return {
        "cpu": cpu,
        # What decides the LLM's CPU path: native bfloat16 (int8 weights + lean step)
        # or not (float32), and the vector width the kernels use.
        "cpu_flags": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"}),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "gpu": None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def chart(result: dict, path: Path) -> None:
    """One stacked horizontal bar per design, the goal marked; each bar labelled with its total."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "end-of-turn silence": "#9e9e9e",
        "speech recognition": "#4c72b0",
        "LLM to first phrase": "#dd8452",
        "LLM whole reply": "#c44e52",
        "TTS first audio": "#55a868",
        "TTS whole reply": "#2f6b3b",
        "silence waited, hand-offs": "#c7c7c7",
        "measured outside the app": "#8172b3",
    }

    def medians(stages: dict) -> dict[str, float]:
        return {k: (v["p50"] or 0.0) for k, v in stages.items()}

    def pipeline_bar(label: str, stages: dict) -> tuple[str, list, float]:
        p = medians(stages)
        segments = [
            ("silence waited, hand-offs", p["waiting"]),
            ("speech recognition", p["asr"]),
            ("LLM to first phrase", p["llm_first_phrase"]),
            ("TTS first audio", p["tts_first_audio"]),
        ]
        return f"{label}\n(median {p['voice_to_voice']:.0f} ms)", segments, p["voice_to_voice"]

    f = medians(result["floor"]["stages_ms"])
    bars = [
        pipeline_bar("pipeline, in-process,\nnew conversation", result["pipeline"]["stages_ms"])
    ]
    vv = result.get("vv_meter") or {}
    if vv.get("p50_ms") is not None:
        session = result["session"]["stages_ms"]
        bars.append(pipeline_bar("pipeline, in-process,\nthe meter's session", session))
        bars.append(
            (
                f"vv-meter: listen via\nvirtual devices (median {vv['p50_ms']:.0f} ms)",
                [("measured outside the app", vv["p50_ms"])],
                vv["p50_ms"],
            )
        )
    for key, label in (
        ("naive", "naive sequential,\nthe libraries' own calls"),
        ("naive_app_engines", "naive sequential,\non the app's engines"),
    ):
        n = medians(result[key]["stages_ms"])
        segments = [
            ("end-of-turn silence", n["endpoint"]),
            ("speech recognition", n["asr"]),
            ("LLM whole reply", n["llm_reply"]),
            ("TTS whole reply", n["tts_reply"]),
        ]
        bars.append(
            (f"{label} (median {n['voice_to_voice']:.0f} ms)", segments, n["voice_to_voice"])
        )
    bars += [
        (
            f"compute floor\n(median {f['floor']:.0f} ms)",
            [
                ("speech recognition", f["asr"]),
                ("LLM to first phrase", f["llm_first_phrase"]),
                ("TTS first audio", f["tts_first_audio"]),
            ],
            f["floor"],
        ),
    ]
    fig, ax = plt.subplots(figsize=(10, 1.0 * len(bars) + 2.0), dpi=120)
    seen: set[str] = set()
    for y, (_, segments, total) in enumerate(bars):
        left = 0.0
        for name, width in segments:
            label = None if name in seen else name
            ax.barh(y, width, left=left, color=colors[name], edgecolor="white", height=0.6,
                    label=label)  # fmt: skip
            if width >= 110:
                ax.text(left + width / 2, y, f"{width:.0f}", ha="center", va="center",
                        fontsize=8, color="white")  # fmt: skip
            seen.add(name)
            left += width
        if abs(left - total) > 1:  # the stages' medians need not add up to the median total
            label = None if "total" in seen else "median total (stages: their own medians)"
            ax.plot([total, total], [y - 0.38, y + 0.38], color="black", lw=2, label=label)
            seen.add("total")
    ax.axvline(GOAL_MS, color="#d62728", ls="--", lw=1.5, label=f"goal: {GOAL_MS} ms")
    ax.set_yticks(range(len(bars)), [label for label, _, _ in bars], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("ms from the end of the user's speech to the first sample of the reply")
    m = result["machine"]
    ax.set_title(
        f"Voice-to-voice latency, medians of {result['turns']} turns "
        f"({m['cpu']}, {m['cores']} cores, no GPU; {result['date'][:10]})",
        fontsize=10,
    )
    ax.grid(axis="x", color="#e0e0e0")
    ax.set_axisbelow(True)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def print_summary(result: dict) -> None:
    """The headline figures of a run, from its JSON result."""
    v2v, naive_v2v, floor_p50 = (
        result["voice_to_voice_p50_ms"],
        result["naive_voice_to_voice_p50_ms"],
        result["floor_p50_ms"],
    )
    print("\n== summary (medians, ms)")
    print(f"cpu flags {' '.join(result['machine'].get('cpu_flags', []))}; llm {result['llm_path']}")
    print(f"pipeline voice-to-voice   {v2v:8.0f}   (p90 {result['voice_to_voice_p90_ms']:.0f})")
    print(f"naive sequential          {naive_v2v:8.0f}   ratio_vs_naive {result['ratio_vs_naive']}")
    print(
        f"  on the app's engines    {result['naive_app_engines_voice_to_voice_p50_ms']:8.0f}   "
        f"ratio_vs_naive_app_engines {result['ratio_vs_naive_app_engines']}"
    )
    print(f"compute floor             {floor_p50:8.0f}   ratio_vs_floor {result['ratio_vs_floor']}")
    stalled = [row.get("stalled") or 0.0 for row in result["pipeline"]["rows"]]
    if stalled:
        print(
            f"reply stalls (pipeline)   {sum(s > 0 for s in stalled)} of {len(stalled)} replies, "
            f"{max(stalled):.0f} ms at most, {sum(stalled):.0f} ms in all"
        )
    meter, edges = result["vv_meter"], result["clock_edges"]
    if meter["p50_ms"] is None:
        print(f"vv-meter                  unavailable: {meter['reason']}")
    else:
        print(
            f"vv-meter (real devices)   {meter['p50_ms']:8.0f}   "
            f"minus in-process: {result['vv_meter_minus_in_process_ms']:+.0f}"
        )
        print(
            f"  in-process, the meter's session (conversation kept): "
            f"{result['session_voice_to_voice_p50_ms']:.0f}; "
            f"vv-meter minus that: {result['vv_meter_minus_session_ms']:+.0f}"
        )
        if edges:
            print(
                f"  the clocks' edges (same signals, no devices): end of speech "
                f"{edges['speech_end_offset_p50_ms']:+.0f}, reply onset "
                f"{edges['reply_onset_offset_p50_ms']:+.0f}"
            )
        if split := meter.get("split"):
            print(
                f"  split (medians): input path {split['input_ms']:+.0f}, the app's own "
                f"{split['in_app_ms']:.0f}, output path {split['output_ms']:+.0f}"
            )
    mem = result["memory"]
    print(
        f"memory: {mem['rss_models_loaded_mb']:.0f} MiB resident with the models loaded, "
        f"peak {mem['peak_rss_mb']:.0f} MiB; listen under the meter: "
        f"{mem['listen_app_rss_max_mb'] or '-'} MiB"
    )
    if soaked := result.get("soak"):
        print(
            f"soak ({soaked['minutes']} min, {soaked['turns']} turns, {soaked['date']}): RSS "
            f"{soaked['rss_start_mb']:.0f} -> {soaked['rss_end_mb']:.0f} MiB "
            f"(growth {soaked['growth_mb']:+.0f}, "
            f"second half {soaked['growth_second_half_mb']:+.0f})"
        )


def _cell(stat: dict | None) -> str:
    if not stat or stat.get("p50") is None:
        return f"{'-':>17}"
    return f"{stat['p50']:>7.0f} /{stat['p90']:>5.0f} ({stat['n']:>3})"


def print_interpreter(result: dict) -> None:
    """The interpreter's figures (interpret_lag.py, interpret_quality.py,
    interpret_soak.py): lags as median / p90 (n) in ms, chrF and WER per direction."""
    lag_columns = [
        ("partial_matched_ms", "partial word"),
        ("caption_ms", "final caption"),
        ("translation_ms", "translation"),
        ("speech_ms", "speech start"),
    ]
    for name, row in (result.get("lag") or {}).items():
        print(f"\n== interpreter lag {name}: {row.get('engines')} (ms: median / p90 (n))")
        print(f"{'from the last word end':<26}" + "".join(f"{c:>19}" for _, c in lag_columns))
        print(f"{'':<26}" + "".join(f"  {_cell(row.get(k))}" for k, _ in lag_columns))
        own = row.get("pipeline_ms", {})
        print(
            f"{'pipeline (from VAD end)':<26}{'':>19}"
            + "".join(f"  {_cell(own.get(k))}" for k in ("caption", "translation", "speech"))
        )
        print(
            f"segments captioned {row['segments_captioned']}, translated "
            f"{row['segments_translated']}, spoken {row['segments_spoken']}; words "
            f"{row['words']} ({row['words_never_matched']} never shown as heard); "
            f"errors {len(row['errors'])}; other processes used "
            f"{row.get('outside_cpu_cores', '?')} cores meanwhile"
        )
    quality = result.get("quality")
    if quality:
        print("\n== interpreter quality from speech (WER/CER of the source caption, chrF)")
        for language, row in quality.get("asr", {}).items():
            metric = "CER" if language == "zh" else "WER"
            print(f"  {language:<10} {metric} {100 * row['error_rate']:5.1f} %  ({row['voice']})")
        for direction, engines in quality.get("translation", {}).items():
            cells = "  ".join(f"{e} {v['chrf']:5.1f}" for e, v in engines.items())
            print(f"  {direction:<10} chrF  {cells}")
    soak = result.get("soak")
    if soak:
        print(
            f"\n== interpreter soak {soak['minutes']} min: RSS {soak['rss_start_mb']:.0f} -> "
            f"{soak['rss_end_mb']:.0f} MiB (max {soak['rss_max_mb']:.0f}); segments heard "
            f"{soak['segments_heard']}, captioned {soak['segments_captioned']}, translated "
            f"{soak['segments_translated']}, spoken {soak['segments_spoken']}; "
            f"errors {len(soak['errors'])}; other processes used up to "
            f"{soak.get('outside_cpu_cores_max', '?')} cores"
        )
        for key, thirds in soak.get("thirds_p50_ms", {}).items():
            print(f"  {key:<14} first third {thirds[0]} ms, last third {thirds[-1]} ms")
