"""Shared fixtures. ``pulse``: the test PulseAudio server (see tests/audio_env.py)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import audio_env`, with or without __init__.py

import audio_env  # noqa: E402

_own_server = None  # (process, runtime dir) when plain `pytest` started the server itself
_server_error: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Same environment as tests/run_suite.sh. Runs before test modules are imported, so that
    PortAudio (initialised by `import sounddevice`) already sees the server and ALSA config."""
    global _own_server, _server_error
    for name, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("QT_QPA_PLATFORM", "offscreen"),
    ):
        os.environ.setdefault(name, value)
    if os.environ.get("VA_TEST_PULSE") or hasattr(config, "workerinput"):
        return  # started by tests/run_suite.sh (or by the xdist controller)
    runtime_dir = tempfile.mkdtemp(prefix="va-test-pulse-")
    os.environ["VA_TEST_PULSE"] = runtime_dir
    try:
        _own_server = (audio_env.start_server(runtime_dir), runtime_dir)
    except (OSError, RuntimeError) as exc:
        _server_error = f"could not start the test PulseAudio server: {exc}"
        shutil.rmtree(runtime_dir, ignore_errors=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _own_server:
        proc, runtime_dir = _own_server
        audio_env.stop_server(proc)
        shutil.rmtree(runtime_dir, ignore_errors=True)


_MODEL_FIXTURES = {"engines", "fresh_engines", "transformers_chat"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that takes the loaded default models is slow, whether or not it says so."""
    for item in items:
        if _MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _fast_tests_load_no_model(request, monkeypatch):
    """Keeps the ``slow`` marker truthful: a test without it that loads a speech,
    language or voice model fails and says to mark it. (A load that fails on a bad
    file is fast, and allowed.)"""
    if request.node.get_closest_marker("slow"):
        return
    from assistant.asr import WhisperRecognizer
    from assistant.llm.llama_cpp_chat import LlamaCppChat
    from assistant.llm.transformers_chat import TransformersChat
    from assistant.tts.piper_engine import PiperEngine

    def refusing(original):
        def init(self, *args, **kwargs):
            original(self, *args, **kwargs)
            raise AssertionError(f"{request.node.nodeid} loads a model: mark it slow")

        return init

    for engine in (WhisperRecognizer, TransformersChat, LlamaCppChat, PiperEngine):
        monkeypatch.setattr(engine, "__init__", refusing(engine.__init__))


@pytest.fixture(scope="session")
def pulse() -> audio_env.PulseAudio:
    """The test PulseAudio server: app_out (default sink) and mic_feed (its monitor is the
    default source). Fails, rather than skips, when it is not reachable."""
    if _server_error:
        pytest.fail(_server_error)
    audio_env.check_server()
    return audio_env.PulseAudio()


@pytest.fixture(scope="session")
def engines():
    """The default models (Whisper base, SmolLM2-135M, Piper joe), loaded once per session."""
    from assistant.config import AssistantConfig
    from assistant.pipeline import load_engines

    return load_engines(AssistantConfig())


@pytest.fixture(scope="session")
def transformers_chat(engines):
    """The default model on the transformers backend, for tests of its own machinery:
    the engines' chat where that is the backend this CPU takes by default (see
    assistant/llm/factory.py), else a second copy loaded for these tests."""
    from assistant.config import LlmConfig
    from assistant.llm.transformers_chat import TransformersChat
    from assistant.model_store import ModelStore

    if isinstance(engines.chat, TransformersChat):
        return engines.chat
    return TransformersChat(LlmConfig(backend="transformers"), ModelStore())


@pytest.fixture(autouse=True)
def _default_settings(request):
    """A test that runs an Assistant with its own settings hands them to the shared
    engines (``Engines.adopt``); the next test starts from the defaults again."""
    yield
    if "engines" in request.fixturenames:
        from assistant.config import AssistantConfig

        engines = request.getfixturevalue("engines")
        engines.adopt(AssistantConfig())
        engines.chat.conversation.clear()
    if "transformers_chat" in request.fixturenames:
        request.getfixturevalue("transformers_chat").conversation.clear()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("speech")
