"""``voice-assistant interpret``: a recording translated (captions, subtitles, JSON), or
live speech interpreted as it is spoken (``--live``).

A recording is decoded for accuracy (Whisper's full window and beam, like ``transcribe``)
and each of its segments translated with the ones before it as context. Live, the
interpreter pipeline runs on the microphone or on what the computer plays, and its
captions are printed as they settle.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time

from assistant.asr import SAMPLE_RATE
from assistant.audio import read_audio
from assistant.commands.transcribe import file_recognizer
from assistant.errors import ConfigError
from assistant.events import (
    ErrorOccurred,
    Event,
    Ready,
    SourceCaption,
    TranslatedCaption,
)
from assistant.interpret.export import check_export_path, to_json, write_export
from assistant.interpret.record import CaptionSegment
from assistant.interpret.translators.base import Context, SourceSegment
from assistant.interpret.translators.factory import check_engine, create_translator
from assistant.model_store import ModelStore
from assistant.progress import ProgressLine


def run(args, config) -> int:
    settings = {"target": args.to}
    if args.source is not None:
        settings["source"] = args.source
    if args.engine is not None:
        settings["engine"] = args.engine
    if args.speak is not None:
        settings["speak"] = args.speak
    if args.input is not None:
        settings["input"] = args.input
    config.update({"interpret": settings}, source="interpret")
    check_engine(config.interpret)  # before anything slow
    outputs = [check_export_path(path) for path in (args.srt, args.vtt) if path is not None]
    if args.live == (args.file is not None):
        raise ConfigError("interpret needs a recording (FILE) or --live, not both")
    if args.live:
        return _live(args, config, outputs)
    return _file(args, config, outputs)


def _file(args, config, outputs) -> int:
    started = time.perf_counter()
    audio = read_audio(args.file)
    store = ModelStore()
    recognizer = file_recognizer(config)
    translator = create_translator(config, store, recognizer)
    loaded = time.perf_counter()
    interpret = config.interpret
    with ProgressLine() as line:
        line.update("transcribing")
        transcript = recognizer.transcribe_file(audio, language=interpret.source)
        heard = time.perf_counter()
        segments, context = [], []
        for i, seg in enumerate(transcript.segments, 1):
            line.update(f"translating segment {i} / {len(transcript.segments)}")
            clip = audio[int(seg.start * SAMPLE_RATE) : int(seg.end * SAMPLE_RATE)]
            source = SourceSegment(seg.text, transcript.language, clip)
            translation = (
                seg.text
                if transcript.language == interpret.target
                else translator.translate(source, interpret.target, context[-_context(config) :])
            )
            context.append(Context(seg.text, translation))
            segments.append(
                CaptionSegment(
                    i, seg.start, seg.end, seg.text, transcript.language, translation,
                    interpret.target,
                )
            )  # fmt: skip
    translator.close()
    done = time.perf_counter()
    timings = {
        "load": round(1000 * (loaded - started), 1),
        "asr": round(1000 * (heard - loaded), 1),
        "translation": round(1000 * (done - heard), 1),
        "total": round(1000 * (done - started), 1),
    }
    _export(outputs, segments, transcript.language, interpret.target, timings)
    if args.json:
        data = to_json(
            segments, language=transcript.language, target=interpret.target, timings_ms=timings
        )
        print(json.dumps(data, ensure_ascii=False))
    else:
        for seg in segments:
            print(f"{seg.text}\n  → {seg.translation}")
    if not segments:
        print(f"voice-assistant: no speech heard in {args.file}", file=sys.stderr)
    return 0


def _context(config) -> int:
    return config.interpret.context_segments or 0


def _export(outputs, segments, language, target, timings=None) -> None:
    for path in outputs:
        write_export(path, segments, "both", language=language, target=target, timings_ms=timings)


def _live(args, config, outputs) -> int:
    from assistant.audio.monitor import input_source
    from assistant.audio.sinks import NullSink, SpeakerSink
    from assistant.instance_lock import live_session
    from assistant.interpret.engines import load_interpreter_engines
    from assistant.pipeline.modes.interpreter import Interpreter

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with live_session("interpret", allow_second=args.allow_second_instance):
        audio = config.audio
        source = input_source(config.interpret.input, audio.sample_rate, audio.block_ms)
        engines = load_interpreter_engines(
            config, progress=lambda m: print(f"[{m}]", file=sys.stderr)
        )
        sink = SpeakerSink(audio.output_device) if config.interpret.speak else NullSink()
        interpreter = Interpreter(config, engines, source, sink)
        print(f"[{interpreter.description}]", file=sys.stderr)
        stop = threading.Event()
        interpreter.subscribe(CaptionPrinter(sys.stdout.isatty(), args.ready_file))
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        try:
            interpreter.start()
        except BaseException:
            interpreter.shutdown()
            engines.close()
            raise
        try:
            stop.wait()
        finally:
            left = interpreter.shutdown()
            engines.close()
            segments = interpreter.record.segments()
            language = segments[0].language if segments else ""
            _export(outputs, segments, language, config.interpret.target)
            if args.ready_file:
                with contextlib.suppress(OSError):
                    args.ready_file.unlink()
    return 1 if left else 0


class CaptionPrinter:
    """Captions as they settle. On a terminal the open segment's line is rewritten as its
    words come (confirmed, then the tentative rest in brackets); elsewhere (a pipe, a
    log) only closed segments and their translations are printed, one line each."""

    def __init__(self, terminal: bool, ready_file=None) -> None:
        self._terminal = terminal
        self._ready_file = ready_file
        self._lock = threading.Lock()
        self._open = False

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._print(event)

    def _print(self, event: Event) -> None:
        if isinstance(event, SourceCaption):
            if event.final:
                self._end_line()
                if event.confirmed:
                    print(f"[{_clock(event.start)}] {event.confirmed}", flush=True)
            elif self._terminal:
                rest = f" [{event.tentative}]" if event.tentative else ""
                print(f"\r\033[K[{_clock(event.start)}] {event.confirmed}{rest}", end="")
                sys.stdout.flush()
                self._open = True
        elif isinstance(event, TranslatedCaption):
            self._end_line()
            print(f"  → {event.text}", flush=True)
        elif isinstance(event, Ready):
            print("interpreting (Ctrl-C to quit)", file=sys.stderr, flush=True)
            if self._ready_file:
                self._ready_file.write_text("interpreting\n")
        elif isinstance(event, ErrorOccurred):
            self._end_line()
            print(f"error ({event.stage}): {event.message}", file=sys.stderr, flush=True)

    def _end_line(self) -> None:
        if self._open:
            print("\r\033[K", end="")
            self._open = False


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes):02d}:{seconds:04.1f}"
