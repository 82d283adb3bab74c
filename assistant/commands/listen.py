"""The live assistant in a terminal, on real audio devices."""

from __future__ import annotations

import contextlib
import select
import signal
import sys
import threading

from assistant.audio.sinks import SpeakerSink
from assistant.audio.sources import MicrophoneSource
from assistant.events import (
    ErrorOccurred,
    Event,
    FinalTranscript,
    NothingHeard,
    Ready,
    ReplyFinished,
    ReplyToken,
    TurnCancelled,
)
from assistant.pipeline import Assistant, load_engines

_KEYS = {"space": " ", "enter": "\n", "tab": "\t"}


def device(value: str | None) -> str | int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def run(args, config) -> int:
    if args.push_to_talk:
        config.vad.mode = "push-to-talk"
    config.audio.input_device = device(args.input_device) or config.audio.input_device
    config.audio.output_device = device(args.output_device) or config.audio.output_device
    engines = load_engines(config, progress=lambda m: print(f"[{m}]", file=sys.stderr))
    assistant = Assistant(
        config,
        engines,
        MicrophoneSource(
            config.audio.input_device, config.audio.sample_rate, config.audio.block_ms
        ),
        SpeakerSink(config.audio.output_device),
    )
    stop = threading.Event()
    assistant.subscribe(Printer(args.ready_file))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    assistant.start()
    try:
        if args.push_to_talk:
            key = _KEYS.get(args.push_to_talk.lower(), args.push_to_talk[:1])
            toggle_with_key(assistant, key, stop)
        stop.wait()
    finally:
        left = assistant.shutdown()
        if args.ready_file:
            with contextlib.suppress(OSError):
                args.ready_file.unlink()
    return 1 if left else 0


class Printer:
    """Prints the conversation as it happens; creates the ready file once listening."""

    def __init__(self, ready_file) -> None:
        self.ready_file = ready_file

    def __call__(self, event: Event) -> None:
        if isinstance(event, Ready):
            print("listening (Ctrl-C to quit)", file=sys.stderr, flush=True)
            if self.ready_file:
                self.ready_file.write_text("listening\n")
        elif isinstance(event, FinalTranscript):
            print(f"you: {event.text}", flush=True)
            print("assistant: ", end="", flush=True)
        elif isinstance(event, ReplyToken):
            print(event.text, end="", flush=True)
        elif isinstance(event, ReplyFinished):
            print(" [interrupted]" if event.cancelled else "", flush=True)
        elif isinstance(event, NothingHeard):
            print(f"(nothing heard: {event.reason})", file=sys.stderr, flush=True)
        elif isinstance(event, TurnCancelled):
            print(f"({event.reason})", file=sys.stderr, flush=True)
        elif isinstance(event, ErrorOccurred):
            print(f"error ({event.stage}): {event.message}", file=sys.stderr, flush=True)


def toggle_with_key(assistant: Assistant, key: str, stop: threading.Event) -> None:
    """Each press of ``key`` starts or ends an utterance (a terminal has no key-up)."""
    if not sys.stdin.isatty():
        print("push-to-talk needs a terminal; staying hands-free", file=sys.stderr)
        assistant.config.vad.mode = "hands-free"
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    talking = False
    print(f"press {key!r} to talk, again to send", file=sys.stderr)
    try:
        tty.setcbreak(fd)
        while not stop.is_set():
            ready, _, _ = select.select([sys.stdin], [], [], 0.2)
            if ready and sys.stdin.read(1) == key:
                talking = not talking
                assistant.push_to_talk(talking)
                print("[recording]" if talking else "[sent]", file=sys.stderr, flush=True)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
