"""The naive sequential design, as a reference: each stage waits for the previous one.

Wait for a fixed end-of-turn silence (the pipeline's own Silero endpointer and settings,
on the same real-time-paced audio), transcribe the whole utterance, generate the whole
reply, synthesise all of it, then play. Same loaded models as the pipeline.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from assistant.audio.sinks import FileSink
from assistant.audio.sources import FileSource
from assistant.config import AssistantConfig
from assistant.phrases import speakable
from assistant.pipeline import Engines
from assistant.vad import WINDOW, Endpointer, SileroVad, Utterance

COLUMNS = ["endpoint", "asr", "llm_reply", "tts_reply", "voice_to_voice"]


def listen(config: AssistantConfig, source: FileSource) -> Utterance:
    """Run Silero VAD over ``source`` window by window until a fixed silence ends the turn.

    Window times are computed exactly as the pipeline's VAD worker does, so the endpoint
    delay (last voiced window to the deciding window) means the same thing in both.
    """
    endpointer = Endpointer(copy.deepcopy(config.vad))
    vad = SileroVad()
    rate = config.audio.sample_rate
    pending = np.zeros(0, dtype=np.float32)
    deadline = time.monotonic() + source.audio.size / rate + 10.0
    source.start()
    try:
        while time.monotonic() < deadline:
            block = source.read(timeout=0.1)
            if block is None:
                continue
            pending = np.concatenate([pending, block.samples])
            n = pending.size // WINDOW
            for i in range(n):
                window = pending[i * WINDOW : (i + 1) * WINDOW]
                at = block.captured_at - (pending.size - (i + 1) * WINDOW) / rate
                for event in endpointer.process(window, vad(window), at):
                    if isinstance(event, Utterance):
                        return event
            pending = pending[n * WINDOW :]
    finally:
        source.close()
    raise RuntimeError("naive design: no end of speech found")


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


def sequential_turn(
    config: AssistantConfig,
    wav: Path,
    transcribe: Callable[[np.ndarray], str],
    reply: Callable[[str], str],
    synthesize: Callable[[str], np.ndarray],
    sample_rate: int,
    name: str,
) -> dict:
    """One question through the sequential design, whatever runs its three stages; its
    stage times and voice-to-voice in ms."""
    heard = listen(config, FileSource(wav, realtime=True))
    asr_start = time.monotonic()
    transcript = transcribe(heard.audio)
    if not transcript:
        raise RuntimeError(f"{name}: nothing recognised in {wav.name}")
    llm_start = time.monotonic()
    text = reply(transcript)
    tts_start = time.monotonic()
    audio = synthesize(speakable(text))
    play_at = time.monotonic()
    first_sample: list[float] = []
    FileSink(sample_rate=sample_rate).play(audio, first_sample.append)
    return {
        "transcript": transcript,
        "reply": text,
        "endpoint": _ms(heard.decided_at - heard.speech_end_at),
        "asr": _ms(llm_start - asr_start),
        "llm_reply": _ms(tts_start - llm_start),
        "tts_reply": _ms(play_at - tts_start),
        "voice_to_voice": _ms(first_sample[0] - heard.speech_end_at),
        "reply_audio_s": round(audio.size / sample_rate, 2),
    }


def naive_turn(config: AssistantConfig, engines: Engines, wav: Path) -> dict:
    """The sequential design on the app's engines."""

    def synthesize(text: str) -> np.ndarray:
        chunks = list(engines.tts.synthesize(text))
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    return sequential_turn(
        config,
        wav,
        lambda audio: engines.recognizer.transcribe(audio).text,
        lambda text: engines.chat.reply(text, lambda _text: None)[0],
        synthesize,
        engines.tts.sample_rate,
        "naive design",
    )
