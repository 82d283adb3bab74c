"""One full turn through the live pipeline, with a file as the microphone and the speaker.

The whole file is one spoken question, answered once (``session.answer_question``: the
talk button held from its first sample to its last, so a pause inside the question does
not end the turn). A recording longer than one question is refused before any model
loads, pointing at ``transcribe``.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from assistant.audio import read_audio
from assistant.audio.output_file import OutputFile
from assistant.audio.sinks import FileSink
from assistant.audio.sources import FileSource
from assistant.audio.trim import trim_quiet_start
from assistant.config import AssistantConfig
from assistant.errors import AudioInputError, UserFacingError
from assistant.pipeline import load_engines
from assistant.progress import ProgressLine, clock
from assistant.session import answer_question

# The longest question the live recogniser hears as one: Whisper's encoder window is 30 s.
# ``WhisperRecognizer.transcribe`` decodes a longer utterance as blind 30 s windows (no
# timestamps to cut at), splitting words at each seam, and skips its own language
# detection. The LLM is no tighter: 30 s of speech is ~120 tokens, well inside
# llm.context_tokens (at least 256, 1536 by default).
MAX_QUESTION_S = 30.0
# Sound is what is louder than this; the quiet before and after it does not count.
QUIET_DB = -50.0
# Kept around the sound, so the first syllable and the last consonant survive.
EDGE_MS = 300
BLOCK_MS = 32  # the file is fed in blocks this long; the utterance holds whole blocks


def run(args, config) -> int:
    output = OutputFile(args.output)  # a name or place that cannot work fails before loading
    rate = config.audio.sample_rate
    audio = question_audio(args.input, read_audio(args.input, rate), rate, config)
    source = FileSource(audio=audio, sample_rate=rate, block_ms=BLOCK_MS, realtime=True)
    engines = load_engines(config)
    sink = FileSink(engines.tts.sample_rate)
    with ProgressLine() as line:  # stderr, on a terminal only: stdout is the answer
        record = answer_question(config, engines, source, sink, on_progress=_hearing(line))
    if record is None or record.outcome == "nothing-heard":
        raise UserFacingError(f"no speech heard in {args.input}")
    if record.outcome == "error":
        raise UserFacingError(f"the turn failed: {record.error}")
    output.write(sink.audio, sink.sample_rate)
    if args.json:
        print(
            json.dumps(
                {
                    "transcript": record.transcript,
                    "language": record.language,
                    "reply": record.reply,
                    "timings_ms": record.timings_ms,
                    "output": str(args.output),
                },
                ensure_ascii=False,
            )
        )
    else:
        print(f"you: {record.transcript}")
        print(f"assistant: {record.reply}")
        print("timings (ms): " + ", ".join(f"{k} {v}" for k, v in record.timings_ms.items()))
    return 0


def question_audio(
    path: str | Path, audio: np.ndarray, rate: int, config: AssistantConfig
) -> np.ndarray:
    """``audio`` from just before its first sound to just after its last, or
    AudioInputError if that is longer than one question."""
    limit_s, why = MAX_QUESTION_S, f"Whisper hears {MAX_QUESTION_S:.0f} s at a time"
    if config.vad.max_utterance_s < limit_s:
        limit_s, why = config.vad.max_utterance_s, "vad.max_utterance_s"
    # The pipeline rounds the utterance up to whole blocks: it must still fit the window.
    block = rate * BLOCK_MS // 1000
    room = int(limit_s * rate) - block
    first, last = _sound_span(audio, rate)
    if last - first > room:
        length = f"{clock(audio.size / rate)} long"
        if audio.size - (last - first) >= rate:
            length += f" ({clock((last - first) / rate)} from its first sound to its last)"
        raise AudioInputError(
            f"{path} is {length}; chat answers one spoken question of up to {limit_s:g} s "
            f"({why}). For a long recording use "
            f"'voice-assistant transcribe {shlex.quote(str(path))}'"
        )
    edge = rate * EDGE_MS // 1000
    start, end = max(0, first - edge), min(audio.size, last + edge)
    excess = max(0, (end - start) - room)  # the edges give way first, the leading one first
    lead = min(excess, first - start)
    return audio[start + lead : end - (excess - lead)]


def _sound_span(audio: np.ndarray, rate: int) -> tuple[int, int]:
    """Where the first sound starts and the last one ends; all of it if none is loud."""
    first = audio.size - trim_quiet_start(audio, rate, QUIET_DB, keep_ms=0).size
    last = trim_quiet_start(audio[::-1], rate, QUIET_DB, keep_ms=0).size
    return (first, last) if first < last else (0, audio.size)


def _hearing(line: ProgressLine):
    def show(heard_s: float, total_s: float) -> None:
        if heard_s < total_s:
            line.update(f"hearing {int(heard_s)} s / {total_s:.0f} s")
        else:
            line.update(f"heard {total_s:.0f} s; answering")

    return show
