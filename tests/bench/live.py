"""The live pipeline on one spoken question, timed by the pipeline's own stage marks."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from assistant.audio.sinks import FileSink
from assistant.audio.sources import FileSource
from assistant.config import AssistantConfig
from assistant.pipeline import Engines
from assistant.session import answer_file

STAGES = ["endpoint", "asr", "llm_first_token", "llm_first_phrase", "tts_first_audio"]
# ``waiting``: voice-to-voice less ASR, LLM to first phrase and TTS first audio, the chain
# from the end of speech to the first sample: the silence waited before work starts (the
# speculation delay) or before a ready reply may play (the end-of-turn confirmation), plus
# the hand-offs between threads. The endpoint delay overlaps the work, so it is no summand.
# ``stalled``: silence a real-time speaker would have put inside the reply, waiting for
# audio that was not ready yet (the reply's later phrases racing their own playback).
COLUMNS = [*STAGES, "waiting", "voice_to_voice", "stalled"]
CHAIN = ["asr", "llm_first_phrase", "tts_first_audio"]


class PacedSink(FileSink):
    """A file sink that also notes when each chunk of the reply arrived."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__(sample_rate=sample_rate)
        self.arrivals: list[tuple[float, int]] = []

    def play(self, samples: np.ndarray, on_start=None) -> None:
        self.arrivals.append((time.monotonic(), len(samples)))
        super().play(samples, on_start)

    def stalled_ms(self) -> float:
        """Each chunk plays once it has arrived and the one before it has finished; the
        total time the speaker would have waited in between."""
        stalled, free_at = 0.0, None
        for at, size in self.arrivals:
            start = at if free_at is None else max(at, free_at)
            if free_at is not None:
                stalled += start - free_at
            free_at = start + size / self.sample_rate
        return round(1000 * stalled, 1)


def live_turn(config: AssistantConfig, engines: Engines, wav: Path) -> dict:
    """Feed ``wav`` at real-time pace (file source, file sink); the turn's timings in ms.

    Voice-to-voice ends when the first reply sample is handed to the sink: no device latency.
    """
    sink = PacedSink(engines.tts.sample_rate)
    record = answer_file(config, engines, FileSource(wav, realtime=True), sink)
    if record is None or not record.timings_ms:
        raise RuntimeError(f"the pipeline gave no answer to {wav.name}")
    timings = record.timings_ms
    v2v, *chain = (timings.get(key) for key in ("voice_to_voice", *CHAIN))
    waiting = None
    if v2v is not None and all(ms is not None for ms in chain):
        waiting = round(v2v - sum(ms or 0.0 for ms in chain), 1)
    return {
        "transcript": record.transcript,
        "reply": record.reply,
        **timings,
        "waiting": waiting,
        "stalled": sink.stalled_ms(),
    }
