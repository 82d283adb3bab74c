"""The server's model, with the local one standing in while the server fails
(``llm.fallback_to_local``).

Both backends share one conversation, so a question answered locally is remembered when
the server is back. The local model is loaded only once it is needed: at start-up when
the server is down then, else at the first failed turn (about a second from the
prepared safetensors folder). After a failure the server is left alone for
``RETRY_AFTER_S``, so a server that times out does not cost every turn that long.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from assistant.config import LlmConfig
from assistant.errors import LlmError
from assistant.llm.base import Cancelled, ChatBackend, OnText
from assistant.llm.openai_chat import OpenAIChat, without_credentials
from assistant.model_store import ModelStore

RETRY_AFTER_S = 60.0

log = logging.getLogger(__name__)


class FallbackChat(ChatBackend):
    """``OpenAIChat`` first; ``TransformersChat`` for a turn the server cannot answer.

    A reply the server cuts off after some text has reached ``on_text`` is not answered
    again locally: the user has heard its start, and a second, different answer after it
    would make no sense. That turn fails as it would without the fall-back (the memory as
    before), and the next turns go to the local model until the server is retried.
    """

    name = "openai"

    def __init__(self, config: LlmConfig, store: ModelStore) -> None:
        super().__init__(config.system_prompt)
        self.config = config
        self._store = store
        self._remote: OpenAIChat | None = None
        self._local: ChatBackend | None = None
        self._retry_at = 0.0  # when to try the server again after a failure
        self._warned = False
        self._connect()
        if self._remote is None:
            self._local_backend()

    def describe(self) -> str:
        if self._remote is not None:
            return f"{self._remote.describe()} (local model if it fails)"
        local = self._local.describe() if self._local is not None else "local model"
        url = without_credentials(self.config.url)
        return f"{local} (the server at {url} failed; retried later)"

    def reply(
        self, user_text: str, on_text: OnText, cancelled: Cancelled = lambda: False
    ) -> tuple[str, bool]:
        with self._lock:
            if self._remote is None and time.monotonic() >= self._retry_at:
                self._connect()
            if self._remote is not None:
                heard: list[str] = []

                def passed_on(piece: str) -> None:
                    heard.append(piece)
                    on_text(piece)

                try:
                    return self._remote.reply(user_text, passed_on, cancelled)
                except LlmError as exc:
                    self._server_failed(exc)
                    if heard:
                        raise
            return self._local_backend().reply(user_text, on_text, cancelled)

    def prefill(self) -> None:
        if self._remote is None and self._local is not None:
            with self._lock:
                self._local.prefill()

    def share_cores(self) -> None:
        if self._local is not None:
            self._local.share_cores()

    def close(self) -> None:
        for backend in (self._remote, self._local):
            if backend is not None:
                backend.close()

    def _connect(self) -> None:
        try:
            self._remote = OpenAIChat(self.config, self._store)
        except LlmError as exc:
            self._server_failed(exc)
            return
        self._remote.conversation = self.conversation
        if self._warned:
            log.warning("the LLM server at %s answers again", self._remote.shown_url)
            self._warned = False

    def _server_failed(self, exc: LlmError) -> None:
        if self._remote is not None:
            self._remote.close()
            self._remote = None
        self._retry_at = time.monotonic() + RETRY_AFTER_S
        if not self._warned:
            log.warning("%s; answering with the local model meanwhile", exc)
            self._warned = True

    def _local_backend(self) -> ChatBackend:
        if self._local is None:
            from assistant.llm.transformers_chat import TransformersChat

            local = dataclasses.replace(self.config, backend="transformers")
            self._local = TransformersChat(local, self._store)
            self._local.conversation = self.conversation
        return self._local
