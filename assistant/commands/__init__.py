"""One module per command-line command; imported lazily so ``--help`` stays instant."""

from __future__ import annotations


def transcribe(args, config) -> int:
    from assistant.commands.transcribe import run

    return run(args, config)


def chat(args, config) -> int:
    from assistant.commands.chat import run

    return run(args, config)


def listen(args, config) -> int:
    from assistant.commands.listen import run

    return run(args, config)


def say(args, config) -> int:
    from assistant.commands.say import run

    return run(args, config)


def doctor(args, config) -> int:
    from assistant.commands.doctor import run

    return run(args, config)


def prepare_models(args, config) -> int:
    from assistant.commands.prepare import run

    return run(args, config)


def open_window(config) -> int:
    from assistant.commands.window import run

    return run(config)
