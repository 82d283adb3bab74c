"""``voice-assistant``: the desktop window by default, headless sub-commands otherwise.

Every ``UserFacingError`` becomes one line on stderr and exit status 2, so scripts and
people get the cause and the fix instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from assistant.config import AssistantConfig
from assistant.display import HEADLESS_HINT
from assistant.errors import UserFacingError

EXIT_USER_ERROR = 2
WindowOpener = Callable[..., int]  # (config, *, allow_second: bool) -> exit status


def _global_options(parser: argparse.ArgumentParser, default=None) -> None:
    """The options every command takes, before or after the command's name."""
    parser.add_argument("--config", type=Path, default=default, help="settings file (TOML)")
    parser.add_argument(
        "--asr-model", default=default, help="CTranslate2 Whisper folder instead of the default"
    )
    parser.add_argument(
        "--llm-model", default=default, help="transformers folder or .gguf file for the LLM"
    )
    parser.add_argument(
        "--llm-backend",
        default=default,
        choices=["auto", "transformers", "llama.cpp", "openai"],
        help="which engine answers (default: auto)",
    )
    parser.add_argument(
        "--llm-url", default=default, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
    )
    parser.add_argument("--llm-name", default=default, help="the model name the server serves")
    parser.add_argument(
        "--llm-path",
        default=default,
        choices=["auto", "fast", "stock"],
        help="transformers: lean step or stock",
    )
    parser.add_argument(
        "--voice", default=default, help="Piper voice .onnx file instead of the default"
    )
    parser.add_argument(
        "--device", default=default, choices=["auto", "cpu", "cuda"], help="compute device"
    )
    parser.add_argument(
        "--allow-second-instance",
        action="store_true",
        default=False if default is None else default,
        help="run a live session (listen, the window) even if another one is running",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if default is None else default,
        help="log what each stage does",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-assistant",
        description="An offline voice assistant. With no command, opens the desktop window.",
    )
    _global_options(parser)
    # After a command's name the same options override what came before it; unset ones
    # leave the namespace alone.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("transcribe", parents=[common], help="print the transcript of an audio file")
    p.add_argument("file", type=Path)
    p.add_argument("--language", help="Whisper language code (default: detect)")
    p.add_argument(
        "--task", choices=["transcribe", "translate"], help="default: asr.task (transcribe)"
    )
    p.add_argument("--format", choices=["txt", "json", "srt", "vtt"], default="txt")

    p = sub.add_parser(
        "chat", parents=[common], help="answer one spoken question from a file into a WAV file"
    )
    p.add_argument("--input", type=Path, required=True, help="the question (audio file)")
    p.add_argument("--output", type=Path, required=True, help="where to write the spoken reply")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("listen", parents=[common], help="talk to the assistant in the terminal")
    p.add_argument("--push-to-talk", metavar="KEY", help="toggle listening with KEY (e.g. space)")
    p.add_argument("--input-device", help="microphone name or index (default: system default)")
    p.add_argument("--output-device", help="speaker name or index (default: system default)")
    p.add_argument("--ready-file", type=Path, help="create this file once listening")
    p.add_argument("--hands-free", action="store_true", help="hands-free (the default)")

    p = sub.add_parser(
        "interpret",
        parents=[common],
        help="translate speech: a recording, or live (--live) as captions and speech",
    )
    p.add_argument("file", type=Path, nargs="?", help="a recording (or --live)")
    p.add_argument("--to", required=True, help="the language to translate into (en, zh, fr, ...)")
    p.add_argument("--from", dest="source", help="the language spoken (default: detect)")
    p.add_argument("--engine", choices=["auto", "whisper", "llm", "mt"], help="default: auto")
    p.add_argument("--srt", type=Path, help="also write subtitles (source over translation)")
    p.add_argument("--vtt", type=Path, help="also write WebVTT subtitles")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--live", action="store_true", help="interpret live until Ctrl-C")
    p.add_argument(
        "--input", help="live input: mic (default), monitor (what this computer plays) or a device"
    )
    p.add_argument(
        "--speak",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read the translation aloud (live; default: interpret.speak)",
    )
    p.add_argument("--ready-file", type=Path, help="live: create this file once interpreting")

    p = sub.add_parser("say", parents=[common], help="speak text into a WAV file")
    p.add_argument("text")
    p.add_argument("--output", type=Path, required=True)

    sub.add_parser(
        "doctor", parents=[common], help="check audio devices, models and GPU, and say what to fix"
    )
    sub.add_parser(
        "prepare-models", parents=[common], help="verify and prepare the default models once"
    )
    return parser


# Options that set a setting: (attribute in args, section, key).
_OVERRIDES = (
    ("asr_model", "asr", "model"),
    ("llm_model", "llm", "model"),
    ("llm_backend", "llm", "backend"),
    ("llm_url", "llm", "url"),
    ("llm_name", "llm", "served_model"),
    ("llm_path", "llm", "path"),
    ("voice", "tts", "voice"),
    ("device", "asr", "device"),
    ("device", "llm", "device"),
)


def load_config(args: argparse.Namespace) -> AssistantConfig:
    """The config file with the options on top, each checked like a file's value."""
    config = AssistantConfig.load(args.config)
    for attr, section, key in _OVERRIDES:
        value = getattr(args, attr)
        if value:
            config.update({section: {key: value}}, source=f"--{attr.replace('_', '-')}")
    return config


def main(argv: list[str] | None = None, *, open_window: WindowOpener | None = None) -> int:
    """Run one command; with none, ``open_window(config, allow_second=...)``.

    The window is passed in by the entry point (``ui.launcher``) so that the engine
    never imports the UI or Qt, and the headless commands run where neither is installed.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(  # without -v a warning is one plain line for the user
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(threadName)s %(name)s: %(message)s"
        if args.verbose
        else "voice-assistant: %(message)s",
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the assistant never reaches a model hub
    try:
        config = load_config(args)
        if args.command is None:
            return _window(open_window, config, args.allow_second_instance)
        module = importlib.import_module(f"assistant.commands.{args.command.replace('-', '_')}")
        return module.run(args, config)
    except UserFacingError as exc:
        print(f"voice-assistant: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


def _window(open_window: WindowOpener | None, config: AssistantConfig, allow_second: bool) -> int:
    if open_window is None:
        print(
            "voice-assistant: no desktop window from this entry point; "
            "run 'voice-assistant' or 'python -m ui' for it.\n" + HEADLESS_HINT,
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    return open_window(config, allow_second=allow_second)


if __name__ == "__main__":
    sys.exit(main())
