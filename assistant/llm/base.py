"""What every chat backend offers the pipeline, and the conversation they all keep.

The pipeline talks to one ``ChatBackend`` and never asks which kind it is: a local
transformers model, llama.cpp, or an OpenAI-compatible server. Each keeps its own
conversation memory, so the pipeline's speculation (a reply the user talked over is
forgotten) and barge-in (a cancelled reply is kept as far as it was heard) behave the
same whichever backend answers.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from assistant.errors import LlmError

OnText = Callable[[str], None]
Cancelled = Callable[[], bool]


@dataclass
class Conversation:
    """System prompt plus alternating turns, trimmed oldest-first by the backend."""

    system_prompt: str
    turns: list[dict[str, str]] = field(default_factory=list)

    def messages(self, user_text: str | None = None) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system_prompt}, *self.turns]
        if user_text is not None:
            msgs.append({"role": "user", "content": user_text})
        return msgs

    def add(self, user_text: str, reply: str) -> None:
        self.turns += [
            {"role": "user", "content": user_text},
            {"role": "assistant", "content": reply},
        ]

    def clear(self) -> None:
        self.turns.clear()

    def forget_last(self) -> None:
        del self.turns[-2:]


class ChatBackend(ABC):
    """A chat model that streams its reply and can be cancelled between tokens.

    ``reply`` may be called from any one thread at a time; the pipeline's LLM worker is
    the only caller while the assistant runs.
    """

    #: Short name for reports and the command line: "transformers", "llama.cpp", "openai".
    name: str = ""

    def __init__(self, system_prompt: str) -> None:
        self.conversation = Conversation(system_prompt)
        self._lock = threading.Lock()  # one generation (or memory edit) at a time

    @abstractmethod
    def reply(
        self, user_text: str, on_text: OnText, cancelled: Cancelled = lambda: False
    ) -> tuple[str, bool]:
        """Generate a reply, calling ``on_text`` with each new piece of text.

        Returns (text, was_cancelled). A cancelled reply is remembered as far as it got,
        so the next turn knows what the user already heard. Failures raise
        ``assistant.errors.LlmError`` (one line a user can act on) after the memory is
        left as it was before the call.
        """

    def complete(
        self,
        prompt: str,
        on_text: OnText,
        cancelled: Cancelled = lambda: False,
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
    ) -> tuple[str, bool]:
        """Continue ``prompt`` as raw text, with no chat template and no memory: how a base
        model (the interpreter's few-shot translator) is used.

        Streams like ``reply`` and returns (text, was_cancelled); the text ends before the
        first of ``stop`` and is stripped. Greedy when ``temperature`` is 0.
        """
        raise LlmError(
            f"the {self.name} chat backend cannot complete raw text; "
            "use llama.cpp or an OpenAI-compatible server"
        )

    @abstractmethod
    def describe(self) -> str:
        """One line for ``doctor``, the bench and logs: backend, model, path, device."""

    def prefill(self) -> None:  # noqa: B027 (optional hook)
        """Read the conversation so far ahead of the next question (a speed-up only)."""

    def share_cores(self) -> None:  # noqa: B027 (optional hook)
        """TTS now works beside the decoding: a local backend may use fewer threads."""

    def forget_last(self) -> None:
        """Drop the last exchange (a reply that was only ever speculative)."""
        with self._lock:
            self.conversation.forget_last()

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release threads, sockets or processes the backend holds."""
