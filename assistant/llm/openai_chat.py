"""The chat model on an OpenAI-compatible server: vLLM, Ollama, llama.cpp's server,
``transformers serve``.

The reply streams as server-sent events, one content delta at a time, so the pipeline's
phrase splitter can speak the first clause while the server is still generating. The
conversation lives here, not on the server (the API is stateless), with the same rules
as the local backend: an exchange is kept once it ends, a cancelled reply as far as it
got, and a failed call leaves the memory as it was.

``complete`` sends raw text to ``{url}/completions`` instead (a base model's few-shot
prompt, for the interpreter), streamed and failing the same way.

Every failure becomes one ``LlmError`` line that names the server (never its API key)
and what to do: the pipeline shows it, and the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx2

from assistant.config import LlmConfig
from assistant.errors import ConfigError, LlmError
from assistant.llm.api_key import ENV_VAR, KEYRING_SERVICE, api_key, keyring_user
from assistant.llm.base import Cancelled, ChatBackend, OnText
from assistant.model_store import ModelStore

# The server's tokenizer is not at hand, so the history is measured in characters:
# English runs ~4 characters a token in the BPE vocabularies of current chat models,
# and a chat template adds a few tokens of role markers around every message.
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
_DETAIL_CHARS = 200  # of a server's error text, so that the message stays one line
_NAMES_SHOWN = 8  # of the models a server lists, in an error message


def estimate_tokens(messages: list[dict[str, str]]) -> int:
    """Roughly how many prompt tokens ``messages`` take (see CHARS_PER_TOKEN)."""
    return sum(
        MESSAGE_OVERHEAD_TOKENS + math.ceil(len(m["content"]) / CHARS_PER_TOKEN) for m in messages
    )


class OpenAIChat(ChatBackend):
    """A model behind ``{url}/chat/completions``; ``url`` is the API base (often ``.../v1``).

    Loading checks the server once (``GET {url}/models``), so a server that is down, wants
    a key or serves another model fails at start-up rather than at the first question.
    Timeouts: connecting, and every read of the stream, wait at most
    ``llm.request_timeout_s``; a server that stops sending mid-reply fails after that long.
    """

    name = "openai"

    def __init__(self, config: LlmConfig, store: ModelStore | None = None) -> None:
        super().__init__(config.system_prompt)
        self.config = config
        self.url = config.url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"llm.url {config.url!r} is not an http(s) URL; use e.g. http://127.0.0.1:8000/v1"
            )
        self.shown_url = without_credentials(self.url)
        key = api_key(self.url)
        self._has_key = key is not None
        self._http = httpx2.Client(
            timeout=httpx2.Timeout(config.request_timeout_s),
            headers={"Authorization": f"Bearer {key}"} if key else None,
        )
        try:
            self.served = self._list_models()
            self.model = self._choose_model(config.served_model)
        except BaseException:
            self._http.close()
            raise

    def __repr__(self) -> str:
        return f"OpenAIChat(url={self.shown_url!r}, model={self.model!r})"

    def describe(self) -> str:
        return f"openai-compatible server {self.shown_url}, model {self.model}"

    def close(self) -> None:
        self._http.close()

    # --- the server's models -------------------------------------------------------------

    def _list_models(self) -> list[str] | None:
        """The model names the server lists, or None for a server without a listing."""
        try:
            response = self._http.get(f"{self.url}/models")
        except httpx2.HTTPError as exc:
            raise self._transport_error(exc, None) from None
        if response.status_code in (404, 405, 501):
            return None
        if response.status_code != 200:
            raise self._status_error(response, "/models")
        try:
            return [str(item["id"]) for item in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            return None

    def _choose_model(self, wanted: str) -> str:
        served, url = self.served, self.shown_url
        if served is None:
            if not wanted:
                raise LlmError(
                    f"the LLM server at {url} does not list its models; "
                    "name one with --llm-name (llm.served_model)"
                )
            return wanted
        if wanted:
            # Ollama lists "name:latest" for a model pulled as "name".
            for name in served:
                if name in (wanted, f"{wanted}:latest"):
                    return name
            raise LlmError(self._unknown_model(wanted))
        if len(served) == 1:
            return served[0]
        if not served:
            raise LlmError(f"the LLM server at {url} serves no model yet; load one on it first")
        raise LlmError(
            f"the LLM server at {url} serves several models ({_names(served)}); "
            "choose one with --llm-name (llm.served_model)"
        )

    def _unknown_model(self, wanted: str) -> str:
        serves = f"it serves: {_names(self.served)}" if self.served else "check the name"
        return (
            f"the LLM server at {self.shown_url} does not serve a model named {wanted!r}; "
            f"{serves} (--llm-name, llm.served_model)"
        )

    # --- replies -------------------------------------------------------------------------

    def reply(
        self, user_text: str, on_text: OnText, cancelled: Cancelled = lambda: False
    ) -> tuple[str, bool]:
        """Stream a reply, calling ``on_text`` with each content delta as it arrives.

        ``cancelled`` is checked before the request and before every event of the stream;
        once it is true the connection is closed at once (the server stops generating when
        it notices) and the reply so far is kept. ``on_text`` runs on the caller's thread.
        """
        with self._lock:
            messages = self.conversation.messages(user_text)
            drop = self._turns_to_drop(messages)
            body = {"messages": messages[:1] + messages[1 + drop :]}
            text, was_cancelled = self._stream("/chat/completions", body, on_text, cancelled)
            del self.conversation.turns[:drop]
            self.conversation.add(user_text, text)
            return text, was_cancelled

    def _turns_to_drop(self, messages: list[dict[str, str]]) -> int:
        """How many of the oldest turns to leave out so the prompt fits llm.context_tokens.

        The system prompt and the question always stay; whole exchanges leave, oldest first.
        """
        turns = len(messages) - 2
        drop = 0
        while drop < turns and estimate_tokens(messages[:1] + messages[1 + drop :]) > (
            self.config.context_tokens
        ):
            drop += 2
        return drop

    def complete(
        self,
        prompt: str,
        on_text: OnText,
        cancelled: Cancelled = lambda: False,
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
    ) -> tuple[str, bool]:
        """Stream the server's continuation of ``prompt`` (``/completions``, no chat
        template); cancelled and failing as ``reply`` does, with no memory kept."""
        body = {"prompt": prompt, "max_tokens": max_tokens}
        if stop:
            body["stop"] = list(stop)
        with self._lock:
            return self._stream("/completions", body, on_text, cancelled)

    def _stream(
        self, path: str, request: dict, on_text: OnText, cancelled: Cancelled
    ) -> tuple[str, bool]:
        """POST ``request`` to ``path`` as a stream; (text so far, cancelled)."""
        body = {
            "model": self.model,
            "stream": True,
            "max_tokens": self.config.max_new_tokens,
            "temperature": self.config.temperature,
            **request,
        }
        pieces: list[str] = []
        if cancelled():
            return "", True
        finished = False
        try:
            with self._http.stream("POST", f"{self.url}{path}", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise self._status_error(response, path)
                for event in httpx2.EventSource(response):
                    if cancelled():
                        return "".join(pieces).strip(), True
                    if event.data.strip() == "[DONE]":
                        finished = True
                        break
                    for piece, done in self._deltas(event.data, pieces):
                        finished = finished or done
                        if piece:
                            pieces.append(piece)
                            on_text(piece)
        except httpx2.SSEError:
            raise LlmError(
                f"the LLM server at {self.shown_url} did not stream its reply as server-sent "
                "events; is it an OpenAI-compatible server?"
            ) from None
        except httpx2.HTTPError as exc:
            if not finished:  # a server may close rudely once it has said it is done
                raise self._transport_error(exc, pieces) from None
        if not finished:
            raise self._dropped(pieces, "the stream ended without a finish")
        return "".join(pieces).strip(), False

    def _deltas(self, data: str, pieces: list[str]):
        """(content, finished) for each choice in one event of the stream: a chat chunk's
        ``delta.content`` or a completion chunk's ``text``."""
        try:
            chunk = json.loads(data)
        except ValueError:
            raise LlmError(
                f"the LLM server at {self.shown_url} sent a reply that is not OpenAI-style JSON"
            ) from None
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            raise self._dropped(pieces, _one_line(_error_text(chunk), self._secret()))
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            yield (content if isinstance(content, str) else ""), bool(choice.get("finish_reason"))

    # --- errors --------------------------------------------------------------------------

    def _transport_error(self, exc: httpx2.HTTPError, pieces: list[str] | None) -> LlmError:
        """What a network failure means to the user; ``pieces`` is None before a reply."""
        url, wait = self.shown_url, self.config.request_timeout_s
        if isinstance(exc, httpx2.ConnectTimeout):
            return LlmError(
                f"the LLM server at {url} did not accept a connection within {wait:g} s; "
                "check that it is up and that --llm-url is right"
            )
        if isinstance(exc, httpx2.ConnectError):
            reason = "connection refused" if "refused" in str(exc).lower() else _one_line(exc)
            return LlmError(
                f"cannot reach the LLM server at {url} ({reason}); start it or fix --llm-url"
            )
        if isinstance(exc, httpx2.TimeoutException):
            if pieces:
                return self._dropped(pieces, f"nothing more for {wait:g} s")
            return LlmError(
                f"the LLM server at {url} did not answer within {wait:g} s "
                "(llm.request_timeout_s); it may be overloaded or still loading its model"
            )
        if pieces is not None:
            return self._dropped(pieces, _one_line(exc))
        return LlmError(f"the LLM server at {url} failed: {_one_line(exc)}")

    def _dropped(self, pieces: list[str], reason: str) -> LlmError:
        got = sum(len(p) for p in pieces)
        return LlmError(
            f"the LLM server at {self.shown_url} cut the reply off after {got} characters "
            f"in {len(pieces)} pieces ({reason}); ask again"
        )

    def _status_error(self, response: httpx2.Response, path: str) -> LlmError:
        url, code = self.shown_url, response.status_code
        detail = _one_line(_error_text(_json_or_text(response)), self._secret())
        if code in (401, 403):
            where = (
                f"set {ENV_VAR} or the keyring entry (service {KEYRING_SERVICE!r}, "
                f"user {keyring_user(self.url)!r})"
            )
            if self._has_key:
                return LlmError(
                    f"the LLM server at {url} refused the API key (HTTP {code}); {where}"
                )
            return LlmError(f"the LLM server at {url} wants an API key (HTTP {code}); {where}")
        model = getattr(self, "model", None)
        if code in (400, 404, 422) and model and "model" in detail.lower():
            return LlmError(f"{self._unknown_model(model)} (HTTP {code}: {detail})")
        if code == 404:
            return LlmError(
                f"the LLM server at {url} has no {path} (HTTP 404); "
                "llm.url should be the API base, which often ends in /v1"
            )
        said = f": {detail}" if detail else ""
        if code >= 500:
            return LlmError(f"the LLM server at {url} failed (HTTP {code}{said}); see its log")
        return LlmError(f"the LLM server at {url} rejected the request (HTTP {code}{said})")

    def _secret(self) -> str | None:
        """The key as sent, only so that an echo of it can be struck out of a message."""
        header = self._http.headers.get("Authorization", "")
        return header.removeprefix("Bearer ") or None


def without_credentials(url: str) -> str:
    """``url`` as shown to the user: a ``user:password@`` part is left out."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _names(served: list[str] | None) -> str:
    served = served or []
    shown = ", ".join(served[:_NAMES_SHOWN])
    more = len(served) - _NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _json_or_text(response: httpx2.Response):
    try:
        return response.json()
    except ValueError:
        return response.text


def _error_text(body) -> str:
    """The message in an error body: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}."""
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if key in body:
                return _error_text(body[key])
        return json.dumps(body)
    if isinstance(body, list):
        return "; ".join(_error_text(item) for item in body)
    return str(body)


def _one_line(text, secret: str | None = None) -> str:
    line = " ".join(str(text).split())
    if secret:
        line = line.replace(secret, "***")
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 3] + "..."
