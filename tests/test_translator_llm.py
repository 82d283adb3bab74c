"""The interpreter's LLM translator: Gemma 3 270M on llama.cpp, and a server's /completions.

The real model translates sentences of tests/data/bilingual.json in the directions the
bench trusts it with (tests/bench/translation_quality.py); the assertions name the words
a right translation must have, not a whole output. A recording backend covers the prompt
and the cases that must not reach a model; scripted loopback servers cover the server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from remote.servers import Scripted, models_listing, send_json, send_text, start_stream

from assistant.config import AssistantConfig, LlmConfig
from assistant.errors import ConfigError, LlmError
from assistant.interpret.translators.base import Context, SourceSegment
from assistant.interpret.translators.llm import (
    EXAMPLES,
    LlmTranslator,
    PromptStyle,
    load_llm_translator,
)
from assistant.llm.base import ChatBackend
from assistant.llm.llama_cpp_chat import until_stop
from assistant.model_store import ModelStore

SENTENCES = json.loads((Path(__file__).parent / "data" / "bilingual.json").read_text("utf-8"))[
    "sentences"
]


def sentence(i: int, language: str) -> SourceSegment:
    return SourceSegment(SENTENCES[i][language], language)


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message, message
    return message


class Recording(ChatBackend):
    """Answers every completion with ``answer``, one character a piece, and keeps the
    prompts it was given."""

    name = "recording"

    def __init__(self, answer: str = "Hello.\nFrench: more") -> None:
        super().__init__("")
        self.answer = answer
        self.prompts: list[str] = []

    def reply(self, user_text, on_text, cancelled=lambda: False):
        raise AssertionError("the translator never chats")

    def complete(self, prompt, on_text, cancelled=lambda: False, *, max_tokens, stop=()):
        self.prompts.append(prompt)
        text, _ = until_stop(self.answer, stop)
        return text.strip(), False

    def describe(self) -> str:
        return "recording"


# --- the prompt and the cases that need no model ------------------------------------------


def test_empty_text_calls_no_model():
    backend = Recording()
    translator = LlmTranslator(backend)
    assert translator.translate(SourceSegment("  \n ", "fr"), "en") == ""
    assert backend.prompts == []


def test_prompt_has_the_examples_then_the_context_then_the_segment():
    backend = Recording()
    translator = LlmTranslator(backend, context_segments=2)
    context = [
        Context("Je m'appelle Amélie.", "My name is Amélie."),
        Context("J'habite à Lyon.", "I live in Lyon."),
        Context("Mon chat s'appelle Félix.", "My cat is called Félix."),
    ]
    out = translator.translate(sentence(0, "fr"), "en", context)
    assert out == "Hello."  # the line the model gave, up to its newline
    (prompt,) = backend.prompts
    assert prompt.endswith(f"French: {SENTENCES[0]['fr']}\nEnglish:")
    assert f"French: {EXAMPLES[0]['fr']}\nEnglish: {EXAMPLES[0]['en']}\n" in prompt
    lyon = prompt.index("French: J'habite à Lyon.\nEnglish: I live in Lyon.\n")
    felix = prompt.index("French: Mon chat s'appelle Félix.\nEnglish: My cat is called Félix.")
    assert prompt.index(EXAMPLES[-1]["fr"]) < lyon < felix  # the newest segment last
    assert "Amélie" not in prompt  # only context_segments of them
    assert prompt.count("\nEnglish:") == len(EXAMPLES) + 2 + 1


def test_a_header_and_the_number_of_examples_follow_the_style():
    backend = Recording()
    style = PromptStyle(shots=1, header="Translate {source} to {target}.")
    LlmTranslator(backend, style=style).translate(sentence(1, "de"), "es")
    assert backend.prompts[0] == (
        "Translate German to Spanish.\n\n"
        f"German: {EXAMPLES[0]['de']}\nSpanish: {EXAMPLES[0]['es']}\n\n"
        f"German: {SENTENCES[1]['de']}\nSpanish:"
    )


def test_a_segment_of_several_lines_is_one_line_of_the_prompt():
    backend = Recording()
    LlmTranslator(backend).translate(SourceSegment("Bonjour\nà tous", "fr"), "en")
    assert backend.prompts[0].endswith("French: Bonjour à tous\nEnglish:")


def test_a_segment_of_two_sentences_is_translated_one_sentence_at_a_time():
    """Given two sentences at once, Gemma answered with the second only."""
    backend = Recording("Un.")
    out = LlmTranslator(backend).translate(
        SourceSegment("I would like a room. Where is the station?", "en"), "fr"
    )
    assert out == "Un. Un."
    first, second = backend.prompts
    assert first.endswith("English: I would like a room.\nFrench:")
    # the second sentence sees the first, and its translation, as context
    assert "English: I would like a room.\nFrench: Un.\n" in second
    assert second.endswith("English: Where is the station?\nFrench:")
    zh = LlmTranslator(Recording("好。")).translate(SourceSegment("Good. Fine.", "en"), "zh")
    assert zh == "好。好。"  # no space between Chinese sentences


def test_chinese_output_keeps_no_spaces():
    translator = LlmTranslator(Recording("我 想 预订 一个 房间 ， 住 两 晚 。"))
    assert translator.translate(sentence(0, "en"), "zh") == "我想预订一个房间，住两晚。"


def test_supported_pairs_and_a_refused_one():
    translator = LlmTranslator(Recording())
    for source in ("en", "zh", "fr", "de", "es", ""):
        assert translator.supports(source, "en")
    assert translator.supports("en", "zh") and translator.supports("fr", "de")
    assert not translator.supports("ja", "en") and not translator.supports("en", "ko")
    with pytest.raises(ConfigError) as excinfo:
        translator.translate(SourceSegment("こんにちは", "ja"), "en")
    assert "Japanese" in one_line(excinfo)


def test_cancelled_before_it_starts_calls_no_model():
    backend = Recording()
    assert LlmTranslator(backend).translate(sentence(0, "fr"), "en", (), lambda: True) == ""
    assert backend.prompts == []


def test_a_chat_backend_cannot_complete():
    with pytest.raises(LlmError) as excinfo:
        ChatBackend.complete(Recording(), "French: a\nEnglish:", print, max_tokens=8)
    assert "cannot complete raw text" in one_line(excinfo)


def test_until_stop():
    assert until_stop("Hello.\nFrench: x", ("\n",)) == ("Hello.", True)
    assert until_stop("Hello.", ("\n",)) == ("Hello.", False)
    assert until_stop("a END b STOP", ("STOP", "END")) == ("a ", True)


# --- a server's /completions --------------------------------------------------------------


def served(url: str) -> AssistantConfig:
    config = AssistantConfig()
    config.interpret.llm_url = url
    config.interpret.served_model = "m"
    config.llm.request_timeout_s = 5.0
    return config


def test_server_completion_streams_and_stops_at_the_newline():
    def handle(h) -> None:
        if h.path.endswith("/models"):
            return send_json(h, 200, models_listing("m"))
        start_stream(h)
        for piece in ("I would like ", "to book a room ", "for two nights."):
            send_text(h, piece)
        send_text(h, "", finish="stop")

    with Scripted(handle) as fake:
        translator = load_llm_translator(served(fake.url), ModelStore())
        out = translator.translate(sentence(0, "fr"), "en")
        translator.close()
    assert out == "I would like to book a room for two nights."
    method, path, _, body = fake.requests[-1]
    request = json.loads(body)
    assert (method, path) == ("POST", "/v1/completions")
    assert request["model"] == "m" and request["stream"] and request["stop"] == ["\n"]
    assert request["temperature"] == 0 and request["max_tokens"] == 128
    assert request["prompt"].endswith(f"French: {SENTENCES[0]['fr']}\nEnglish:")
    assert "messages" not in request


def test_server_that_dies_mid_stream_gives_one_line():
    def handle(h) -> None:
        if h.path.endswith("/models"):
            return send_json(h, 200, models_listing("m"))
        start_stream(h)
        send_text(h, "I would ")
        send_text(h, "like")
        # the handler returns: the connection closes with no finish, as a crash does

    with Scripted(handle) as fake:
        translator = load_llm_translator(served(fake.url), ModelStore())
        with pytest.raises(LlmError) as excinfo:
            translator.translate(sentence(0, "fr"), "en")
        translator.close()
    message = one_line(excinfo)
    assert "cut the reply off after 12 characters in 2 pieces" in message and fake.url in message


def test_server_without_completions_says_so():
    def handle(h) -> None:
        if h.path.endswith("/models"):
            return send_json(h, 200, models_listing("m"))
        send_json(h, 404, {"detail": "Not Found"})

    with Scripted(handle) as fake:
        translator = load_llm_translator(served(fake.url), ModelStore())
        with pytest.raises(LlmError) as excinfo:
            translator.translate(sentence(0, "fr"), "en")
        translator.close()
    assert "has no /completions (HTTP 404)" in one_line(excinfo)


# --- the real Gemma -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma():
    translator = load_llm_translator(AssistantConfig(), ModelStore())
    yield translator
    translator.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "index, source, words",
    [
        (0, "fr", ("room", "two nights")),
        (1, "fr", ("nearest pharmacy",)),
        (0, "es", ("room", "two nights")),
        (5, "es", ("jacket",)),
        (0, "de", ("room", "two nights")),
        (5, "de", ("how much", "jacket")),
        (0, "zh", ("room", "two nights")),
    ],
)
def test_gemma_translates_into_english(gemma, index, source, words):
    out = gemma.translate(sentence(index, source), "en").lower()
    assert all(word in out for word in words), out
    assert "\n" not in out


@pytest.mark.slow
def test_gemma_translates_from_english(gemma):
    assert "pharmacie" in gemma.translate(sentence(1, "en"), "fr").lower()
    assert "deux nuits" in gemma.translate(sentence(0, "en"), "fr").lower()
    assert "zwei nächte" in gemma.translate(sentence(0, "en"), "de").lower()
    assert "farmacia" in gemma.translate(sentence(1, "en"), "es").lower()
    chinese = gemma.translate(sentence(1, "en"), "zh")
    assert "药" in chinese and " " not in chinese, chinese


@pytest.mark.slow
def test_gemma_cancelled_mid_way_returns_what_it_had(gemma):
    whole = gemma.translate(sentence(0, "fr"), "en")
    checks = []

    def cancelled() -> bool:  # once before the prompt, then before every token
        checks.append(1)
        return len(checks) > 4

    part = gemma.translate(sentence(0, "fr"), "en", (), cancelled)
    assert part and len(part) < len(whole) and whole.startswith(part), (part, whole)
    assert len(checks) == 5  # not a token past the cancel
    assert gemma.translate(sentence(0, "fr"), "en", (), lambda: True) == ""


@pytest.mark.slow
def test_gemma_loaded_to_complete_cannot_chat(gemma):
    assert "Q4_K_M (gemma-3-270m)" in gemma.describe()
    with pytest.raises(LlmError) as excinfo:
        gemma.backend.reply("Hello", lambda piece: None)
    assert "raw text only" in one_line(excinfo)
    assert gemma.backend.conversation.turns == []


@pytest.mark.slow
def test_gemma_context_carries_a_name(gemma):
    context = [Context("Mon amie s'appelle Zoé.", "My friend is called Zoé.")]
    out = gemma.translate(SourceSegment("Zoé habite à Paris.", "fr"), "en", context)
    assert "Zoé" in out and "Paris" in out, out


def test_translator_settings_reach_the_local_backend(monkeypatch):
    """What load_llm_translator hands llama.cpp, without loading it."""
    seen = {}

    class Fake(Recording):
        def __init__(self, config: LlmConfig, store, *, completion_only=False) -> None:
            super().__init__()
            seen.update(config=config, completion_only=completion_only)

    monkeypatch.setattr("assistant.llm.llama_cpp_chat.LlamaCppChat", Fake)
    config = AssistantConfig()
    config.interpret.max_new_tokens = 64
    translator = load_llm_translator(config, ModelStore())
    llm = seen["config"]
    assert seen["completion_only"] and llm.backend == "llama.cpp" and llm.temperature == 0
    assert llm.model.endswith("gemma-3-270m-q4_k_m.gguf") and Path(llm.model).is_file()
    assert translator.max_new_tokens == llm.max_new_tokens == 64
    assert llm.context_tokens == 1024
