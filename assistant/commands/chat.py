"""One full turn through the live pipeline, with a file as the microphone and the speaker."""

from __future__ import annotations

import json
import time

from assistant.audio.sinks import FileSink
from assistant.audio.sources import FileSource
from assistant.errors import UserFacingError
from assistant.pipeline import Assistant, load_engines
from assistant.session import TurnLog


def run(args, config) -> int:
    source = FileSource(args.input, sample_rate=config.audio.sample_rate, realtime=True)
    engines = load_engines(config)
    sink = FileSink(args.output, engines.tts.sample_rate)
    log = TurnLog()
    assistant = Assistant(config, engines, source, sink)
    assistant.subscribe(log)
    assistant.start()
    try:
        record = wait_for_answer(assistant, source, log, config.vad.end_silence_ms / 1000)
    finally:
        assistant.shutdown()
    if record is None or record.outcome == "nothing-heard":
        raise UserFacingError(f"no speech heard in {args.input}")
    if record.outcome == "error":
        raise UserFacingError(f"the turn failed: {record.error}")
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


def wait_for_answer(assistant: Assistant, source: FileSource, log: TurnLog, end_silence_s: float):
    """The last turn's record once the file is over and nothing is left in flight."""
    deadline = time.monotonic() + source.audio.size / source.sample_rate + 180
    finished_at: float | None = None
    while time.monotonic() < deadline:
        if source.finished.is_set() and finished_at is None:
            finished_at = time.monotonic()
        if finished_at is not None and not assistant.busy:
            record = log.last_finished()
            latest = max(log.turns, default=0)
            if record is not None and record.turn == latest:
                return record
            if not log.turns and time.monotonic() - finished_at > end_silence_s + 1.0:
                return None
        log.wait(lambda _: False, timeout=0.1)
    raise UserFacingError("the assistant did not answer within its time limit")
