"""``voice-assistant transcribe FILE``: a recording's transcript, as text, JSON or subtitles."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable

from assistant.asr import SAMPLE_RATE, WhisperRecognizer, check_language
from assistant.audio import read_audio
from assistant.config import AssistantConfig
from assistant.interpret.export import to_srt, to_vtt
from assistant.interpret.record import CaptionSegment
from assistant.model_store import ModelStore
from assistant.progress import ProgressLine, clock


def run(args, config) -> int:
    language = check_language(args.language)  # fail on a bad code before loading anything
    audio = read_audio(args.file)
    recognizer = file_recognizer(config)
    with ProgressLine() as line:  # stderr, on a terminal only: stdout is the transcript
        show = _transcribing(line, audio.size / SAMPLE_RATE)
        show(0.0)
        result = recognizer.transcribe_file(audio, language=language, task=args.task, progress=show)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "text": result.text,
                    "language": result.language,
                    "language_probability": round(result.language_probability, 3),
                    "duration": round(result.duration_s, 3),
                    "segments": [
                        {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
                        for s in result.segments
                    ],
                },
                ensure_ascii=False,
            )
        )
    elif args.format in ("srt", "vtt"):
        captions = [
            CaptionSegment(i, s.start, s.end, s.text, result.language)
            for i, s in enumerate(result.segments, 1)
        ]
        print((to_srt if args.format == "srt" else to_vtt)(captions, "source"), end="")
    else:
        print(result.text)
    if not result.segments:  # stdout stays empty for scripts; a person is told why
        print(f"voice-assistant: no speech heard in {args.file}", file=sys.stderr)
    return 0


def file_recognizer(config: AssistantConfig) -> WhisperRecognizer:
    """Whisper loaded for recordings: ``transcribe_file`` on it decodes for accuracy (see
    asr.FILE_DECODING). Loaded for the full window, the CPU's threads go to both encoder
    and decoder rather than to the live path's one-thread decoder."""
    asr = dataclasses.replace(config.asr, window="full")
    return WhisperRecognizer(ModelStore().whisper_dir(asr.model), asr)


def _transcribing(line: ProgressLine, duration: float) -> Callable[[float], None]:
    """Shows how far decoding has got: "transcribing 2:30 / 10:00 (25%)"."""

    def show(at: float) -> None:
        at = min(max(at, 0.0), duration)
        line.update(f"transcribing {clock(at)} / {clock(duration)} ({100 * at / duration:.0f}%)")

    return show
