"""The live assistant in a terminal, on real audio devices."""

from __future__ import annotations

import contextlib
import select
import signal
import sys
import threading

from assistant.audio.sinks import SpeakerSink
from assistant.audio.sources import MicrophoneSource
from assistant.errors import AudioDeviceError
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
from assistant.instance_lock import live_session
from assistant.pipeline import Assistant, load_engines

_KEYS = {"space": " ", "enter": "\n", "tab": "\t"}


def device(value: str | None) -> str | int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def run(args, config) -> int:
    # Until the pipeline takes both signals over, SIGTERM ends loading the way Ctrl-C
    # does: one line, exit 130, no half-started devices.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Before anything slow: a second instance, or a microphone that is not there, is
    # told so in a second instead of after the models have loaded.
    with live_session("listen", allow_second=args.allow_second_instance):
        return _listen(args, config)


def _listen(args, config) -> int:
    if args.push_to_talk:
        config.vad.mode = "push-to-talk"
    if args.input_device is not None:  # device 0 is a device too
        config.audio.input_device = device(args.input_device)
    if args.output_device is not None:
        config.audio.output_device = device(args.output_device)
    check_microphone(config.audio.input_device)
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
    print(f"[{assistant.echo.description}]", file=sys.stderr)
    assistant.subscribe(Printer(args.ready_file))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        # Opens the microphone for real: one that is there but cannot be opened raises
        # here, before "listening" and the ready file.
        assistant.start()
    except BaseException:
        assistant.shutdown()
        raise
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


def check_microphone(input_device: str | int | None) -> None:
    """Raise ``AudioDeviceError`` unless ``input_device`` names an input device.

    The same first check ``MicrophoneSource.start`` makes, in the same words, done
    before the models load; opening the stream is still ``Assistant.start``'s job."""
    import sounddevice as sd

    try:
        sd.query_devices(input_device, "input")
    except (ValueError, sd.PortAudioError) as exc:
        where = "system default" if input_device is None else f"device {input_device!r}"
        raise AudioDeviceError(f"no usable microphone ({where}): {exc}") from None


class Printer:
    """Prints the conversation as it happens; creates the ready file once listening.

    A reply is printed token by token on an ``assistant: `` line that stays open until
    its turn ends. Events come from several threads and turns overlap (a barge-in's
    transcript can arrive before the old reply's end), so any other output first ends
    the open line, with `` [interrupted]`` when its turn was superseded, and whatever
    arrives later for a line already ended prints nothing more. A line ended only by
    a message about its own, still running turn (an error) goes on as ``assistant: ...``.
    """

    def __init__(self, ready_file) -> None:
        self.ready_file = ready_file
        self._lock = threading.Lock()
        self._open: int | None = None  # the turn whose reply line is open
        self._paused: int | None = None  # a turn whose line an error cut; it may go on
        self._newest = -1  # the newest turn given a reply line

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._print(event)

    def _print(self, event: Event) -> None:
        turn = event.turn
        if isinstance(event, ReplyToken):
            if turn != self._open:
                if turn == self._paused:
                    self._begin_reply(turn, "assistant: ...")
                elif turn > self._newest:  # a reply with no transcript line before it
                    self._end_line(interrupted=True)
                    self._begin_reply(turn, "assistant: ")
                else:
                    return  # a superseded turn's, after its line was ended
            print(event.text, end="", flush=True)
        elif isinstance(event, ReplyFinished):
            if turn == self._open:
                self._end_line(interrupted=event.cancelled)
            if turn == self._paused:
                self._paused = None
        elif isinstance(event, FinalTranscript):
            self._end_line(interrupted=True)
            print(f"you: {event.text}", flush=True)
            self._begin_reply(turn, "assistant: ")
        elif isinstance(event, Ready | NothingHeard | TurnCancelled | ErrorOccurred):
            superseded = self._open is not None and (
                turn > self._open or (turn == self._open and isinstance(event, TurnCancelled))
            )
            if self._open is not None and not superseded:
                self._paused = self._open
            self._end_line(interrupted=superseded)
            if isinstance(event, TurnCancelled) and turn == self._paused:
                self._paused = None
            self._say(event)

    def _say(self, event: Event) -> None:
        if isinstance(event, Ready):
            print("listening (Ctrl-C to quit)", file=sys.stderr, flush=True)
            if self.ready_file:
                self.ready_file.write_text("listening\n")
        elif isinstance(event, NothingHeard):
            print(f"(nothing heard: {event.reason})", file=sys.stderr, flush=True)
        elif isinstance(event, TurnCancelled):
            print(f"({event.reason})", file=sys.stderr, flush=True)
        elif isinstance(event, ErrorOccurred):
            print(f"error ({event.stage}): {event.message}", file=sys.stderr, flush=True)

    def _begin_reply(self, turn: int, prefix: str) -> None:
        print(prefix, end="", flush=True)
        self._open, self._paused = turn, None
        self._newest = max(self._newest, turn)

    def _end_line(self, *, interrupted: bool) -> None:
        if self._open is None:
            return
        print(" [interrupted]" if interrupted else "", flush=True)
        self._open = None


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
