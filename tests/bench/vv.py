"""Voice-to-voice from outside the process: ../shared/tools/vv-meter against the real CLI.

The meter starts its own PulseAudio server (null sinks ``mic_feed`` and ``app_out``) in a
private XDG_RUNTIME_DIR, plays each question into the virtual microphone and times the
first sample of the reply on the virtual speaker. ``voice-assistant listen`` reaches that
server through PortAudio -> ALSA -> the pulse plugin (tests/pulse/asound.conf), as in
tests/run_suite.sh. Any failure is returned as a reason, never raised: the bench goes on.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
METER = REPO.parent / "shared" / "tools" / "vv-meter" / "vv_meter.py"
ASOUND = REPO / "tests" / "pulse" / "asound.conf"
TOOLS = ("pulseaudio", "pactl", "paplay", "parec")


def unavailable(reason: str) -> dict:
    return {"p50_ms": None, "reason": reason}


def _stop_pulse(runtime_dir: Path) -> None:
    """Stop the PulseAudio server the meter started in ``runtime_dir`` if it outlived it."""
    try:
        pid = int((runtime_dir / "pulse" / "pid").read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        pass


def _tail(path: Path, lines: int) -> str:
    """The last lines of a log, leaving out a traceback's indented frames."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    kept = [line for line in text.splitlines() if line.strip() and not line[0].isspace()]
    return " | ".join(line for line in kept[-lines:] if not line.startswith("Traceback"))


def _median(values: list[float]) -> float | None:
    return round(float(statistics.median(values)), 1) if values else None


def split_latency(rows: list[dict], app_turns: list[dict]) -> dict:
    """Line the meter's rows up with the app's own marks (``--vv-timed``), per turn.

    meter latency = input (the app's end of speech - the meter's) + the app's own
    voice-to-voice + output (the meter's onset - the app's first sample at the DAC).
    """
    parts: dict[str, list[float]] = {"input_ms": [], "in_app_ms": [], "output_ms": []}
    for row in rows:
        if row.get("t_onset_mono") is None:
            continue
        turn = min(app_turns, key=lambda t: abs(t["speech_end_at"] - row["t_eos_mono"]))
        if abs(turn["speech_end_at"] - row["t_eos_mono"]) > 2.0:
            continue
        parts["input_ms"].append(1000 * (turn["speech_end_at"] - row["t_eos_mono"]))
        parts["in_app_ms"].append(turn["voice_to_voice"])
        parts["output_ms"].append(1000 * (row["t_onset_mono"] - turn["first_sample_at"]))
    stages = {
        k: _median([t[k] for t in app_turns if t.get(k) is not None])
        for k in ("endpoint", "asr", "llm_first_phrase", "tts_first_audio", "output_buffer_ms")
    }
    return {"turns": len(parts["in_app_ms"]), **{k: _median(v) for k, v in parts.items()},
            "app_stages_p50_ms": stages, "app_turns": app_turns}  # fmt: skip


def run_meter(
    wavs: list[Path],
    *,
    repeat: int,
    warmup: int = 1,
    timed: bool = False,
    config: Path | None = None,
    timeout_s: float = 480,
) -> dict:
    """The meter's per-question latencies and median, or ``p50_ms: None`` and a reason.

    ``timed`` runs tests/bench/listen_timed.py (the same command plus a subscriber that
    logs the app's own marks) instead of the plain CLI, and splits the meter's latency.
    ``config``: a settings file the app reads as the user's own.
    """
    if not METER.is_file():
        return unavailable(f"the vv-meter is not at {METER}")
    if missing := [tool for tool in TOOLS if shutil.which(tool) is None]:
        return unavailable(f"missing {', '.join(missing)} (Debian pulseaudio pulseaudio-utils)")
    app = Path(sys.executable).parent / "voice-assistant"
    if not app.exists():
        return unavailable(f"no {app}: the project is not installed in this environment")
    with tempfile.TemporaryDirectory(prefix="bench-vv-") as tmp:
        work = Path(tmp)
        runtime_dir = work / "xdg"
        runtime_dir.mkdir(mode=0o700)
        ready, result, log = work / "ready", work / "vv.json", work / "meter.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
        env.update(
            XDG_RUNTIME_DIR=str(runtime_dir),
            ALSA_CONFIG_PATH=f"/usr/share/alsa/alsa.conf:{ASOUND}",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
        )
        if config is not None:
            env["XDG_CONFIG_HOME"] = str(work / "config")
            (work / "config" / "voice-assistant").mkdir(parents=True)
            shutil.copy(config, work / "config" / "voice-assistant" / "config.toml")
        app_cmd = f"{shlex.quote(str(app))} listen"
        if timed:
            env["BENCH_TIMINGS"] = str(work / "timings.jsonl")
            here = Path(__file__).with_name("listen_timed.py")
            app_cmd = f"{shlex.quote(sys.executable)} {shlex.quote(str(here))}"
        app_cmd += f" --ready-file {shlex.quote(str(ready))}"
        cmd = [
            sys.executable, str(METER), *map(str, wavs),
            "--app-cmd", app_cmd, "--ready-file", str(ready), "--ready-timeout", "180",
            "--warmup", str(warmup), "--repeat", str(repeat),
            "--json", str(result), "--app-log", str(work / "app.log"),
            "--runtime-dir", str(runtime_dir), "--stop-pulse",
        ]  # fmt: skip
        with log.open("w") as out:
            meter = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                rc = meter.wait(timeout_s)
            except subprocess.TimeoutExpired:
                meter.send_signal(signal.SIGINT)  # its finally: stops the app and PulseAudio
                try:
                    meter.wait(30)
                except subprocess.TimeoutExpired:
                    meter.kill()
                    meter.wait()
                rc = None
            finally:
                _stop_pulse(runtime_dir)
        if rc is None:
            return unavailable(f"the meter ran past {timeout_s:.0f} s: {_tail(log, 3)}")
        if not result.is_file():
            reason = f"the meter failed (exit {rc}): {_tail(log, 3)}"
            pulse_log = runtime_dir / "vv-meter-pulse.log"
            if pulse_log.is_file() and pulse_log.stat().st_size:
                reason += f"; PulseAudio's log: {_tail(pulse_log, 3)}"
            return unavailable(reason)
        data = json.loads(result.read_text())
        summary = data.get("summary", {})
        measured = [r for r in data.get("results", []) if not r.get("warmup")]
        rows = [
            {
                "query": r["query"],
                "latency_ms": r.get("latency_ms"),
                "reply_s": r.get("reply_dur_s"),
                "flags": r.get("flags", []),
                "app_cpu_pct_one_core": r.get("app_cpu_pct_one_core"),
                "other_load_cores": r.get("other_load_cores"),
            }
            for r in measured
        ]
        split = None
        if timed and (work / "timings.jsonl").is_file():
            lines = (work / "timings.jsonl").read_text().splitlines()
            split = split_latency(measured, [json.loads(line) for line in lines])
        if summary.get("median_latency_ms") is None:
            return {
                **unavailable(f"no reply was measured (exit {rc}): {_tail(work / 'app.log', 3)}"),
                "rows": rows,
            }
        return {
            "p50_ms": summary["median_latency_ms"],
            "mean_ms": summary.get("mean_latency_ms"),
            "min_ms": summary.get("min_latency_ms"),
            "max_ms": summary.get("max_latency_ms"),
            "turns": summary.get("n_with_reply"),
            "app_rss_mb_max": summary.get("app_rss_mb_max"),
            "app_cpu_pct_of_one_core": summary.get("app_cpu_pct_of_one_core_avg"),
            "reason": None,
            "split": split,
            "rows": rows,
        }
