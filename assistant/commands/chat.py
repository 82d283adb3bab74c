"""One full turn through the live pipeline, with a file as the microphone and the speaker."""

from __future__ import annotations

import json

from assistant.audio.output_file import OutputFile
from assistant.audio.sinks import FileSink
from assistant.audio.sources import FileSource
from assistant.errors import UserFacingError
from assistant.pipeline import load_engines
from assistant.session import answer_file


def run(args, config) -> int:
    output = OutputFile(args.output)  # a name or place that cannot work fails before loading
    source = FileSource(args.input, sample_rate=config.audio.sample_rate, realtime=True)
    engines = load_engines(config)
    sink = FileSink(engines.tts.sample_rate)
    record = answer_file(config, engines, source, sink)
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
