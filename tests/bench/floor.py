"""The compute floor: the three models' own time to a first reply sample, each run alone.

ASR of the utterance, the LLM to its first phrase, TTS of that phrase to its first audio,
one after the other with nothing else running: no endpoint wait, no queues, no audio I/O.
"""

from __future__ import annotations

import time
from pathlib import Path

from naive import listen

from assistant.audio.sources import FileSource
from assistant.config import AssistantConfig
from assistant.phrases import PhraseSplitter
from assistant.pipeline import Engines

COLUMNS = ["asr", "llm_first_phrase", "tts_first_audio", "floor"]


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


def floor_turn(config: AssistantConfig, engines: Engines, wav: Path) -> dict:
    heard = listen(config, FileSource(wav, realtime=False))  # the pipeline's utterance audio
    start = time.monotonic()
    transcript = engines.recognizer.transcribe(heard.audio)
    asr_s = time.monotonic() - start
    if not transcript.text:
        raise RuntimeError(f"floor: nothing recognised in {wav.name}")

    splitter = PhraseSplitter(
        config.tts.min_phrase_chars, config.tts.max_phrase_chars, config.tts.first_phrase_words
    )
    first: list[tuple[float, str]] = []

    def on_text(text: str) -> None:
        if not first:
            first.extend((time.monotonic(), p) for p in splitter.feed(text)[:1])

    start = time.monotonic()
    engines.chat.reply(transcript.text, on_text, cancelled=lambda: bool(first))
    if not first:  # a reply shorter than one phrase: it ends at the end of generation
        first.extend((time.monotonic(), p) for p in splitter.flush()[:1])
    if not first:
        raise RuntimeError(f"floor: empty reply to {transcript.text!r}")
    phrase_at, phrase = first[0]
    llm_s = phrase_at - start

    start = time.monotonic()
    chunks = engines.tts.synthesize(phrase)
    next(iter(chunks))
    tts_s = time.monotonic() - start
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
    return {
        "transcript": transcript.text,
        "first_phrase": phrase,
        "asr": _ms(asr_s),
        "llm_first_phrase": _ms(llm_s),
        "tts_first_audio": _ms(tts_s),
        "floor": _ms(asr_s + llm_s + tts_s),
    }
