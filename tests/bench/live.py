"""The live pipeline on one spoken question, timed by the pipeline's own stage marks."""

from __future__ import annotations

from pathlib import Path

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
COLUMNS = [*STAGES, "waiting", "voice_to_voice"]
CHAIN = ["asr", "llm_first_phrase", "tts_first_audio"]


def live_turn(config: AssistantConfig, engines: Engines, wav: Path) -> dict:
    """Feed ``wav`` at real-time pace (file source, file sink); the turn's timings in ms.

    Voice-to-voice ends when the first reply sample is handed to the sink: no device latency.
    """
    sink = FileSink(sample_rate=engines.tts.sample_rate)
    record = answer_file(config, engines, FileSource(wav, realtime=True), sink)
    if record is None or not record.timings_ms:
        raise RuntimeError(f"the pipeline gave no answer to {wav.name}")
    timings = record.timings_ms
    v2v, *chain = (timings.get(key) for key in ("voice_to_voice", *CHAIN))
    waiting = None
    if v2v is not None and all(ms is not None for ms in chain):
        waiting = round(v2v - sum(ms or 0.0 for ms in chain), 1)
    return {"transcript": record.transcript, "reply": record.reply, **timings, "waiting": waiting}
