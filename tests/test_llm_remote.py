"""The OpenAI-compatible backend against real servers on 127.0.0.1.

By default the module starts ``transformers serve`` on the default model's safetensors
folder. With ``VA_LLM_URL`` (and ``VA_LLM_NAME``) set it uses that server instead, as
``make remote-check`` does for vLLM. The cut-off test always kills a ``transformers
serve`` of its own; scripted loopback servers stand in where a real one will not fail on
demand (401, a silent server, a stall mid-reply).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from audio_env import read_wav, speak
from remote.servers import (
    Scripted,
    SilentServer,
    TransformersServe,
    free_port,
    models_listing,
    send_delta,
    send_json,
    served_models,
    start_stream,
    wait_for_client_to_leave,
)

from assistant.config import LlmConfig
from assistant.errors import ConfigError, LlmError
from assistant.llm import api_key as api_key_module
from assistant.llm import create_chat
from assistant.llm.openai_chat import OpenAIChat, estimate_tokens
from assistant.model_store import ModelStore

QUESTION = "How many days are in a week?"
FOLLOW_UP = "And how many hours are in one of them?"
LONG_ASK = "Tell me a long story about a dragon who learns to fly."
SECRET = "sk-test-secret-4711"


@pytest.fixture(scope="module")
def model_dir() -> Path:
    folder = ModelStore().llm_cache_dir()
    assert (folder / "model.safetensors").is_file(), f"{folder} is missing: run `make setup`"
    return folder


@pytest.fixture(scope="module")
def server(model_dir):
    """(url, served name) of the server under test, started here unless VA_LLM_URL is set."""
    url = os.environ.get("VA_LLM_URL")
    if url:
        yield url.rstrip("/"), os.environ.get("VA_LLM_NAME", "")
        return
    serve = TransformersServe(model_dir)
    print(f"transformers serve ready in {serve.startup_s:.1f} s")
    yield serve.url, serve.name
    serve.stop()


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch):
    """Neither the developer's environment nor keyring may leak a key into a test."""
    import keyring
    from keyring.backends import fail

    monkeypatch.delenv(api_key_module.ENV_VAR, raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def config(url: str, name: str = "", **changes) -> LlmConfig:
    """Short replies (two cores are shared with other work), and a limit a loaded machine
    stays within."""
    settings = {"request_timeout_s": 60.0, "max_new_tokens": 32, **changes}
    return LlmConfig(backend="openai", url=url, served_model=name, **settings)


@pytest.fixture
def chat(server):
    backend = OpenAIChat(config(*server))
    yield backend
    backend.close()


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message, message
    return message


# --- replies from the real server ---------------------------------------------------------


def test_reply_streams_in_pieces_and_makes_sense(chat):
    pieces: list[tuple[float, str]] = []
    text, cancelled = chat.reply(QUESTION, lambda p: pieces.append((time.monotonic(), p)))
    assert not cancelled
    assert len(pieces) >= 3, pieces
    assert "".join(p for _, p in pieces).strip() == text
    assert "7" in text or "seven" in text.lower(), text
    # Token streaming: the pieces came as generated, not in one read at the end.
    assert pieces[-1][0] - pieces[0][0] > 0.01, pieces
    assert chat.conversation.turns == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": text},
    ]


def test_empty_served_model_takes_the_only_one(server):
    url, name = server
    backend = OpenAIChat(config(url, ""))
    try:
        assert backend.model == (name or backend.served[0])
        assert backend.served == [backend.model]
    finally:
        backend.close()


def test_second_question_uses_the_first(chat):
    first, _ = chat.reply(QUESTION, lambda p: None)
    second, _ = chat.reply(FOLLOW_UP, lambda p: None)
    assert "24" in second or "twenty-four" in second.lower(), (first, second)
    assert [t["content"] for t in chat.conversation.turns] == [QUESTION, first, FOLLOW_UP, second]


def test_forget_last_drops_the_exchange(chat):
    chat.reply(QUESTION, lambda p: None)
    chat.forget_last()
    assert chat.conversation.turns == []


def test_old_turns_trimmed_to_the_context_budget(server):
    # System prompt and question ~63 estimated tokens, each old exchange ~100: room for one.
    budget = 170
    backend = OpenAIChat(config(*server, context_tokens=budget))
    try:
        old = [
            (f"Tell me about river {i}. " * 8, f"River {i} flows to the sea. " * 8)
            for i in range(3)
        ]
        for question, answer in old:
            backend.conversation.add(question, answer)
        text, _ = backend.reply(QUESTION, lambda p: None)
        assert [t["content"] for t in backend.conversation.turns] == [*old[-1], QUESTION, text]
        sent = backend.conversation.messages()[:-1]  # all but this reply
        assert estimate_tokens(sent) <= budget < estimate_tokens(sent) + 100
    finally:
        backend.close()


def test_cancel_mid_reply_closes_the_stream_and_keeps_the_start(chat):
    pieces: list[str] = []
    stop = threading.Event()
    stopped_at: list[float] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()
            stopped_at.append(time.monotonic())

    text, cancelled = chat.reply(LONG_ASK, on_text, stop.is_set)
    returned = time.monotonic() - stopped_at[0]
    assert cancelled
    assert len(pieces) == 3  # nothing more after the cancel
    assert text == "".join(pieces).strip() and text
    assert returned < 2.0, returned  # one more token's time at most
    assert chat.conversation.turns[-1] == {"role": "assistant", "content": text}
    # The connection was closed, not drained: the next question still gets its answer.
    again, cancelled = chat.reply(QUESTION, lambda p: None)
    assert not cancelled and ("7" in again or "seven" in again.lower()), again


def test_cancel_closes_the_connection():
    """The server sees the client go away once the turn is cancelled (barge-in)."""

    def handle(h) -> None:
        if h.path.endswith("/models"):
            return send_json(h, 200, models_listing("m"))
        start_stream(h)
        for i in range(3):  # the client cancels after two pieces, at the third event
            send_delta(h, f"word{i} ")
        wait_for_client_to_leave(h, 10.0)  # the stream stays open until it does

    with Scripted(handle) as fake:
        backend = OpenAIChat(config(fake.url, "m", request_timeout_s=5.0))
        pieces: list[str] = []
        text, cancelled = backend.reply(QUESTION, pieces.append, lambda: len(pieces) >= 2)
        assert cancelled and text == "word0 word1"
        assert fake.disconnected.wait(5.0), "the server kept streaming to nobody"
        backend.close()


def test_cancelled_before_the_request_sends_nothing():
    with Scripted(lambda h: send_json(h, 200, models_listing("m"))) as fake:
        backend = OpenAIChat(config(fake.url, "m"))
        text, cancelled = backend.reply(QUESTION, lambda p: None, lambda: True)
        backend.close()
    assert (text, cancelled) == ("", True)
    assert [(method, path) for method, path, _, _ in fake.requests] == [("GET", "/v1/models")]


# --- failures: one line a user can act on ---------------------------------------------


def test_wrong_model_name_names_it_and_the_served_ones(server):
    url, _ = server
    with pytest.raises(LlmError) as excinfo:
        OpenAIChat(config(url, "no-such-model"))
    message = one_line_error(excinfo)
    assert "'no-such-model'" in message and url in message
    served = served_models(url)
    assert served and all(f"'{n}'" in message or n in message for n in served), message


def test_model_refused_at_reply_time(chat):
    chat.model = "another-model"  # as if the server changed models after the check
    before = list(chat.conversation.turns)
    with pytest.raises(LlmError) as excinfo:
        chat.reply(QUESTION, lambda p: None)
    message = one_line_error(excinfo)
    assert "'another-model'" in message and "HTTP 4" in message
    assert chat.conversation.turns == before


def test_server_down_fails_at_load():
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(LlmError) as excinfo:
        create_chat(config(url, "m"), ModelStore())
    message = one_line_error(excinfo)
    assert url in message and "connection refused" in message
    assert time.monotonic() - started < 5


def test_url_that_is_not_http_is_a_config_error():
    with pytest.raises(ConfigError) as excinfo:
        OpenAIChat(config("localhost:8000/v1", "m"))
    assert "http" in one_line_error(excinfo)


def unauthorised(h) -> None:
    send_json(h, 401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}})


def test_401_without_a_key_says_where_to_put_one():
    with Scripted(unauthorised) as fake, pytest.raises(LlmError) as excinfo:
        OpenAIChat(config(fake.url, "m"))
    message = one_line_error(excinfo)
    assert "HTTP 401" in message and fake.url in message
    assert "VOICE_ASSISTANT_API_KEY" in message and "keyring" in message
    assert "Authorization" not in fake.requests[0][2]


def test_401_with_a_key_never_shows_it(monkeypatch):
    monkeypatch.setenv("VOICE_ASSISTANT_API_KEY", SECRET)
    with Scripted(unauthorised) as fake, pytest.raises(LlmError) as excinfo:
        OpenAIChat(config(fake.url, "m"))
    message = one_line_error(excinfo)
    assert "refused the API key" in message and SECRET not in message
    assert fake.requests[0][2]["Authorization"] == f"Bearer {SECRET}"


def test_key_from_the_keyring_is_sent_and_kept_out_of_repr():
    import keyring
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1
        entries: dict[tuple[str, str], str] = {}

        def get_password(self, service, username):
            return self.entries.get((service, username))

        def set_password(self, service, username, password):
            self.entries[(service, username)] = password

        def delete_password(self, service, username):
            self.entries.pop((service, username), None)

    def handle(h) -> None:
        send_json(h, 200, models_listing("m"))

    with Scripted(handle) as fake:
        keyring.set_keyring(Memory())
        user = f"127.0.0.1:{fake.url.split(':')[2].split('/')[0]}"
        assert api_key_module.keyring_user(fake.url) == user
        keyring.set_password("voice-assistant", user, SECRET)
        backend = OpenAIChat(config(fake.url, "m"))
        assert fake.requests[0][2]["Authorization"] == f"Bearer {SECRET}"
        assert SECRET not in repr(backend) and SECRET not in backend.describe()
        backend.close()


def test_no_keyring_backend_means_no_key():
    assert api_key_module.api_key("http://127.0.0.1:1/v1") is None  # the fail backend


def test_environment_key_wins_over_the_keyring(monkeypatch):
    monkeypatch.setenv("VOICE_ASSISTANT_API_KEY", f"  {SECRET}\n")
    assert api_key_module.api_key("http://127.0.0.1:1/v1") == SECRET


def test_server_error_5xx():
    def handle(h) -> None:
        if h.path.endswith("/models"):
            return send_json(h, 200, models_listing("m"))
        send_json(h, 503, {"error": {"message": "engine overloaded\nretry later"}})

    with Scripted(handle) as fake:
        backend = OpenAIChat(config(fake.url, "m"))
        with pytest.raises(LlmError) as excinfo:
            backend.reply(QUESTION, lambda p: None)
        message = one_line_error(excinfo)
        assert "HTTP 503" in message and "engine overloaded retry later" in message
        assert backend.conversation.turns == []
        backend.close()


def test_silent_server_times_out_within_the_limit():
    with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(LlmError) as excinfo:
            OpenAIChat(config(silent.url, "m", request_timeout_s=1.0))
        took = time.monotonic() - started
    message = one_line_error(excinfo)
    assert "within 1 s" in message and silent.url in message
    assert 0.9 <= took < 3.0, took


def test_stall_mid_reply_times_out_and_says_how_much_came():
    def handle(h) -> None:
        if h.path.endswith("/models"):
            return send_json(h, 200, models_listing("m"))
        start_stream(h)
        send_delta(h, "Seven ")
        send_delta(h, "days")
        wait_for_client_to_leave(h, 10.0)  # then nothing, until the client gives up

    with Scripted(handle) as fake:
        backend = OpenAIChat(config(fake.url, "m", request_timeout_s=1.0))
        pieces: list[str] = []
        started = time.monotonic()
        with pytest.raises(LlmError) as excinfo:
            backend.reply(QUESTION, pieces.append)
        took = time.monotonic() - started
        message = one_line_error(excinfo)
        assert pieces == ["Seven ", "days"]
        assert "after 10 characters in 2 pieces" in message and "nothing more for 1 s" in message
        assert took < 3.0, took
        assert backend.conversation.turns == []
        backend.close()


def test_server_killed_mid_reply(model_dir, server):
    """A crash mid-reply: the error says how much came, and the memory is as before."""
    doomed = TransformersServe(model_dir)
    try:
        backend = OpenAIChat(config(doomed.url, doomed.name))
        backend.conversation.add("Hello.", "Hello! How can I help?")
        before = list(backend.conversation.turns)
        pieces: list[str] = []
        killed: list[float] = []

        def on_text(piece: str) -> None:
            pieces.append(piece)
            if len(pieces) == 3:
                doomed.kill()
                killed.append(time.monotonic())

        with pytest.raises(LlmError) as excinfo:
            backend.reply(LONG_ASK, on_text)
        took = time.monotonic() - killed[0]
        message = one_line_error(excinfo)
        got = len("".join(pieces))
        assert len(pieces) == 3
        assert f"cut the reply off after {got} characters in 3 pieces" in message, message
        assert doomed.url in message
        assert took < 5, took  # the closed socket is noticed at once, not by a timeout
        assert backend.conversation.turns == before
        backend.close()
    finally:
        doomed.stop()


# --- fall-back to the local model and the whole assistant ---------------------------------


@pytest.mark.slow
def test_fallback_answers_locally_when_the_server_is_down(caplog):
    url = f"http://127.0.0.1:{free_port()}/v1"
    caplog.set_level(logging.WARNING, logger="assistant.llm.fallback")
    backend = create_chat(config(url, "m", fallback_to_local=True), ModelStore())
    try:
        assert "transformers" in backend.describe()
        text, cancelled = backend.reply(QUESTION, lambda p: None)
        assert not cancelled and ("7" in text or "seven" in text.lower()), text
        second, _ = backend.reply(FOLLOW_UP, lambda p: None)
        assert "24" in second or "twenty-four" in second.lower(), second
        warnings = [r.getMessage() for r in caplog.records if r.name == "assistant.llm.fallback"]
        assert len(warnings) == 1 and url in warnings[0] and "local model" in warnings[0]
    finally:
        backend.close()


@pytest.mark.slow
def test_fallback_takes_the_turn_the_server_fails(caplog):
    """Up at start-up, failing at the question: the local model answers that turn, and the
    conversation it joins is the one the server's turns built."""

    def handle(h) -> None:
        if h.path.endswith("/models"):
            return send_json(h, 200, models_listing("m"))
        send_json(h, 503, {"error": {"message": "model crashed"}})

    caplog.set_level(logging.WARNING, logger="assistant.llm.fallback")
    with Scripted(handle) as fake:
        backend = create_chat(config(fake.url, "m", fallback_to_local=True), ModelStore())
        try:
            assert "local model if it fails" in backend.describe()
            text, _ = backend.reply(QUESTION, lambda p: None)
            assert "7" in text or "seven" in text.lower(), text
            assert [t["content"] for t in backend.conversation.turns] == [QUESTION, text]
            assert "transformers" in backend.describe()
            warnings = [
                r.getMessage() for r in caplog.records if r.name == "assistant.llm.fallback"
            ]
            assert len(warnings) == 1 and "HTTP 503" in warnings[0], warnings
        finally:
            backend.close()


@pytest.mark.slow
def test_cli_chat_answers_through_the_server(server, tmp_path):
    url, name = server
    question = speak(QUESTION, tmp_path / "question.wav")
    reply = tmp_path / "reply.wav"
    name_args = ["--llm-name", name] if name else []
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "chat", "--input", str(question),
         "--output", str(reply), "--json", "-v", "--llm-url", url, *name_args],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    # -v logs each request: the reply came from the server, not a local model.
    assert f"POST {url}/chat/completions" in result.stderr, result.stderr[-3000:]
    assert "week" in data["transcript"].lower(), data
    assert "7" in data["reply"] or "seven" in data["reply"].lower(), data
    audio, rate = read_wav(reply)
    assert len(audio) / rate > 0.5
    assert float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) > 0.01


@pytest.mark.slow
def test_cli_with_the_server_down_prints_one_line_and_exits_2(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    question = speak(QUESTION, tmp_path / "question.wav")
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "--llm-url", url, "--llm-name", "m",
         "chat", "--input", str(question), "--output", str(tmp_path / "reply.wav")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voice-assistant: error: "), lines
    assert url in lines[0] and "connection refused" in lines[0]
