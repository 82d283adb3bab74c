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
from pathlib import Path

from assistant.config import AssistantConfig
from assistant.errors import UserFacingError

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-assistant",
        description="An offline voice assistant. With no command, opens the desktop window.",
    )
    parser.add_argument("--config", type=Path, help="settings file (TOML)")
    parser.add_argument("--asr-model", help="CTranslate2 Whisper folder instead of the default")
    parser.add_argument("--llm-model", help="transformers folder or .gguf file for the LLM")
    parser.add_argument(
        "--llm-backend",
        choices=["auto", "transformers", "llama.cpp", "openai"],
        help="which engine answers (default: auto)",
    )
    parser.add_argument("--llm-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--llm-name", help="the model name the server serves")
    parser.add_argument(
        "--llm-path", choices=["auto", "fast", "stock"], help="transformers: lean step or stock"
    )
    parser.add_argument("--voice", help="Piper voice .onnx file instead of the default")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="compute device")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each stage does")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("transcribe", help="print the transcript of an audio file")
    p.add_argument("file", type=Path)
    p.add_argument("--language", help="Whisper language code (default: detect)")
    p.add_argument("--task", choices=["transcribe", "translate"], default="transcribe")
    p.add_argument("--format", choices=["txt", "json", "srt", "vtt"], default="txt")

    p = sub.add_parser("chat", help="answer one spoken question from a file into a WAV file")
    p.add_argument("--input", type=Path, required=True, help="the question (audio file)")
    p.add_argument("--output", type=Path, required=True, help="where to write the spoken reply")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("listen", help="talk to the assistant in the terminal")
    p.add_argument("--push-to-talk", metavar="KEY", help="toggle listening with KEY (e.g. space)")
    p.add_argument("--input-device", help="microphone name or index (default: system default)")
    p.add_argument("--output-device", help="speaker name or index (default: system default)")
    p.add_argument("--ready-file", type=Path, help="create this file once listening")
    p.add_argument("--hands-free", action="store_true", help="hands-free (the default)")

    p = sub.add_parser("say", help="speak text into a WAV file")
    p.add_argument("text")
    p.add_argument("--output", type=Path, required=True)

    sub.add_parser("doctor", help="check audio devices, models and GPU, and say what to fix")
    sub.add_parser("prepare-models", help="verify and prepare the default models once")
    return parser


def load_config(args: argparse.Namespace) -> AssistantConfig:
    config = AssistantConfig.load(args.config)
    if args.asr_model:
        config.asr.model = args.asr_model
    if args.llm_model:
        config.llm.model = args.llm_model
    if args.llm_backend:
        config.llm.backend = args.llm_backend
    if args.llm_url:
        config.llm.url = args.llm_url
    if args.llm_name:
        config.llm.served_model = args.llm_name
    if args.llm_path:
        config.llm.path = args.llm_path
    if args.voice:
        config.tts.voice = args.voice
    if args.device:
        config.asr.device = config.llm.device = args.device
    return config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(threadName)s %(name)s: %(message)s",
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the assistant never reaches a model hub
    try:
        config = load_config(args)
        return _dispatch(args, config)
    except UserFacingError as exc:
        print(f"voice-assistant: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, config: AssistantConfig) -> int:
    if args.command is None:
        from assistant.commands import window

        return window.run(config)
    module = importlib.import_module(f"assistant.commands.{args.command.replace('-', '_')}")
    return module.run(args, config)


if __name__ == "__main__":
    sys.exit(main())
