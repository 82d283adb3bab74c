"""Resident memory of this process, and a soak: one live session answering for N minutes."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from assistant.audio.blocks import AudioBlock
from assistant.audio.files import read_audio
from assistant.audio.sinks import NullSink
from assistant.config import AssistantConfig
from assistant.events import AudioFinished, ErrorOccurred, Event, TurnTimings
from assistant.pipeline import Assistant, Engines


def _status_kb(field: str, pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    raise KeyError(field)


def rss_mb(pid: int | str = "self") -> float:
    """Current resident set size (VmRSS) in MiB."""
    return round(_status_kb("VmRSS", pid) / 1024, 1)


def peak_rss_mb(pid: int | str = "self") -> float:
    """Highest resident set size so far (VmHWM) in MiB."""
    return round(_status_kb("VmHWM", pid) / 1024, 1)


class QuestionLoop:
    """A microphone that asks the questions in turn, each once the assistant has been idle
    for ``gap_s``; room silence in between. Paced at the wall clock like FileSource."""

    def __init__(
        self, questions: list[np.ndarray], idle: Callable[[], bool], rate: int, block_ms: int
    ) -> None:
        self.sample_rate = rate
        self._questions = itertools.cycle(questions)
        self._idle = idle
        self._block = rate * block_ms // 1000
        self._speaking: np.ndarray | None = None
        self._quiet_since: float | None = None
        self._blocks = 0
        self._t0 = 0.0
        self._closed = threading.Event()
        self.gap_s = 1.5

    def start(self) -> None:
        self._t0 = time.monotonic()

    def read(self, timeout: float) -> AudioBlock | None:
        self._blocks += 1
        due = self._t0 + self._blocks * self._block / self.sample_rate
        wait = due - time.monotonic()
        if self._closed.is_set() or (wait > 0 and self._closed.wait(wait)):
            return None
        if self._speaking is None:
            samples = np.zeros(self._block, np.float32)
            if not self._idle():
                self._quiet_since = None
            elif self._quiet_since is None:
                self._quiet_since = due
            elif due - self._quiet_since >= self.gap_s:
                self._speaking, self._quiet_since = next(self._questions), None
            return AudioBlock(samples, due)
        samples, self._speaking = self._speaking[: self._block], self._speaking[self._block :]
        if self._speaking.size == 0:
            self._speaking = None
        return AudioBlock(np.pad(samples, (0, self._block - samples.size)), due)

    def close(self) -> None:
        self._closed.set()


def soak(
    config: AssistantConfig,
    engines: Engines,
    wavs: list[Path],
    minutes: float,
    report: Callable[[str], None] = print,
) -> dict:
    """One Assistant answering the questions in a loop for ``minutes``, as a long session
    would (the conversation is kept, trimmed by the model's context budget); RSS after
    every answered turn. Growth is also given over the second half, past the start-up."""
    rate = config.audio.sample_rate
    questions = [read_audio(wav, rate) for wav in wavs]
    samples: list[dict] = []
    errors: list[str] = []
    voice_to_voice: dict[int, float | None] = {}
    done = threading.Event()
    start = time.monotonic()
    engines.chat.conversation.clear()
    assistant: Assistant | None = None

    def idle() -> bool:
        return assistant is not None and not assistant.busy

    source = QuestionLoop(questions, idle, rate, config.audio.block_ms)

    def on_event(event: Event) -> None:
        if isinstance(event, TurnTimings):
            voice_to_voice[event.turn] = event.timings_ms.get("voice_to_voice")
        elif isinstance(event, ErrorOccurred):
            errors.append(f"{event.stage}: {event.message}")
        elif isinstance(event, AudioFinished) and not done.is_set():
            elapsed = time.monotonic() - start
            samples.append(
                {
                    "turn": len(samples) + 1,
                    "t_s": round(elapsed, 1),
                    "rss_mb": rss_mb(),
                    "voice_to_voice_ms": voice_to_voice.pop(event.turn, None),
                    "interrupted": event.interrupted,
                }
            )
            if len(samples) % 20 == 0:
                report(f"soak: {len(samples)} turns, {elapsed / 60:.1f} min, {rss_mb():.0f} MiB")
            if elapsed >= 60 * minutes:
                done.set()

    assistant = Assistant(config, engines, source, NullSink(engines.tts.sample_rate))
    assistant.subscribe(on_event)
    assistant.start()
    try:
        done.wait(60 * minutes + 120)
    finally:
        assistant.shutdown()
    if not samples:
        raise RuntimeError(f"soak: no turn was answered; errors: {errors[:3]}")
    rss = [s["rss_mb"] for s in samples]
    quarter = max(1, len(rss) // 4)  # the medians of each quarter of the run
    return {
        "minutes": round((time.monotonic() - start) / 60, 1),
        "turns": len(samples),
        "interrupted": sum(s["interrupted"] for s in samples),
        "errors": errors[:5],
        "rss_start_mb": rss[0],
        "rss_end_mb": rss[-1],
        "rss_max_mb": max(rss),
        "growth_mb": round(rss[-1] - rss[0], 1),
        "growth_second_half_mb": round(rss[-1] - rss[len(rss) // 2], 1),
        "rss_quarter_medians_mb": [
            round(float(np.median(rss[i * quarter : (i + 1) * quarter])), 1)
            for i in range(4)
            if rss[i * quarter : (i + 1) * quarter]
        ],
        "peak_rss_mb": peak_rss_mb(),
        "samples": samples,
    }
