"""The llama.cpp backend on the bundled SmolLM2 GGUF: streaming, cancellation, the KV cache
kept across turns, memory trimming, shared cores, and its answers against transformers'."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from assistant.config import LlmConfig
from assistant.errors import ConfigError, ModelError
from assistant.llm.llama_cpp_chat import LlamaCppChat
from assistant.model_store import ModelStore


def _llama(**settings) -> LlamaCppChat:
    return LlamaCppChat(LlmConfig(backend="llama.cpp", **settings), ModelStore())


@pytest.fixture(scope="module")
def chat():
    # One thread: on a busy 2-core machine two ggml threads keep waiting for each other.
    backend = _llama(threads=1)
    yield backend
    backend.close()


@pytest.fixture
def decodes(monkeypatch):
    """(tokens, threads) of every batch that reaches llama.cpp's llama_decode."""
    import llama_cpp

    calls: list[tuple[int, int]] = []
    real = llama_cpp.llama_cpp.llama_decode

    def counting(ctx, batch):
        calls.append((batch.n_tokens, llama_cpp.llama_n_threads(ctx)))
        return real(ctx, batch)

    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_decode", counting)
    return calls


def _next_logits(chat: LlamaCppChat, prompt: list[int]) -> np.ndarray:
    """Logits after ``prompt``, evaluating only what the KV cache lacks."""
    chat._hold(prompt, keep_last=True)
    chat._eval(prompt[chat._llm.n_tokens :])
    return chat._logits().astype(np.float64)


def _same_choice(cached: np.ndarray, fresh: np.ndarray) -> None:
    cosine = cached @ fresh / (np.linalg.norm(cached) * np.linalg.norm(fresh))
    assert cached.argmax() == fresh.argmax() and cosine > 0.999, cosine


def _quiet(_text: str) -> None:
    pass


@pytest.mark.slow
def test_a_reply_streams_in_pieces_and_answers(chat):
    chat.conversation.clear()
    pieces: list[str] = []
    text, cancelled = chat.reply("How many days are in a week?", pieces.append)
    assert not cancelled and len(pieces) >= 3, pieces
    assert "".join(pieces).strip() == text
    assert re.search(r"\b(7|seven)\b", text.lower()), text
    assert chat.conversation.turns == [
        {"role": "user", "content": "How many days are in a week?"},
        {"role": "assistant", "content": text},
    ]
    assert chat.describe() == "llama.cpp Q4_1 (SmolLM2-135M-Instruct) on cpu, 1 thread"


@pytest.mark.slow
def test_cancelling_stops_before_the_next_token(chat, decodes):
    chat.conversation.clear()
    pieces: list[str] = []
    at_request: list[int] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            at_request.append(len(decodes))

    text, cancelled = chat.reply(
        "Tell me a long story about a dragon.", on_text, cancelled=lambda: len(pieces) >= 3
    )
    assert cancelled and len(pieces) == 3
    assert len(decodes) == at_request[0]  # not one more token evaluated after the request
    assert text == "".join(pieces).strip()
    assert chat.conversation.turns[-1] == {"role": "assistant", "content": text}


@pytest.mark.slow
def test_a_new_turn_evaluates_only_what_the_kv_cache_lacks(chat, decodes):
    chat.conversation.clear()
    chat.reply("What is your name?", _quiet)
    chat.prefill()
    opening = chat._next_turn_opening()
    assert chat.cached_tokens == opening  # history + "<|im_start|>user\n", read ahead

    question = "Where do penguins live?"
    prompt = chat.prompt_ids(question)
    decodes.clear()
    text, _ = chat.reply(question, _quiet)
    assert text
    assert decodes[0][0] == len(prompt) - len(opening) < 25 < len(prompt), (decodes[0], prompt)
    assert all(n == 1 for n, _ in decodes[1:])  # then one token at a time
    assert chat.cached_tokens[: len(prompt)] == prompt

    # Without a prefill, the next prompt still reuses everything up to the last reply.
    question = "And what do they eat?"
    prompt = chat.prompt_ids(question)
    decodes.clear()
    cached = _next_logits(chat, prompt)
    assert len(prompt) > 80 and decodes[0][0] < 30, (len(prompt), decodes[0])
    chat._llm.reset()
    _same_choice(cached, _next_logits(chat, prompt))
    chat.conversation.clear()


@pytest.mark.slow
def test_forgetting_a_speculative_reply_keeps_the_kv_cache_consistent(chat, decodes):
    chat.conversation.clear()
    chat.reply("What is your name?", _quiet)
    chat.prefill()
    kept = chat.cached_tokens
    chat.reply("Tell me about the moon.", _quiet)  # speculative: the user went on talking
    chat.forget_last()
    assert [t["content"] for t in chat.conversation.turns][0] == "What is your name?"
    assert len(chat.conversation.turns) == 2

    question = "Where do penguins live?"
    prompt = chat.prompt_ids(question)
    assert prompt[: len(kept)] == kept
    decodes.clear()
    cached = _next_logits(chat, prompt)
    assert decodes[0][0] == len(prompt) - len(kept)  # the moon exchange was dropped, not re-read
    assert chat.cached_tokens == prompt
    chat._llm.reset()
    _same_choice(cached, _next_logits(chat, prompt))
    chat.conversation.clear()


@pytest.mark.slow
def test_the_history_is_trimmed_oldest_first_a_third_at_a_time(chat, monkeypatch, decodes):
    chat.conversation.clear()
    for i in range(8):
        chat.conversation.add(f"Question number {i} about the weather.", "It is sunny. " * 20)
    monkeypatch.setattr(chat.config, "context_tokens", 600)
    ids = chat.prompt_ids("And tomorrow?")
    assert len(ids) <= 600
    kept = [t["content"] for t in chat.conversation.turns if t["role"] == "user"]
    assert kept and "number 7" in kept[-1] and "number 0" not in " ".join(kept)
    assert (
        len(chat._chat_tokens(None, generation=False)) <= 400
    )  # down to two thirds, not just under
    prompt = chat._llm.detokenize(ids, special=True).decode()
    assert chat.config.system_prompt in prompt and "And tomorrow?" in prompt

    chat.conversation.add("And tomorrow?", "It is sunny. " * 20)
    while len(chat._chat_tokens(None, generation=False)) + 160 <= 600:
        chat.conversation.add("And the day after?", "It is sunny. " * 20)
    chat.prefill()  # a question and its reply's start no longer fit: trimmed here
    history = len(chat._chat_tokens(None, generation=False))
    assert history + 160 <= 400, history
    assert chat.conversation.turns[-2]["content"] == "And the day after?"
    assert chat.cached_tokens == chat._next_turn_opening()
    decodes.clear()
    text, _ = chat.reply("Will it rain?", _quiet)
    assert text and decodes[0][0] < 25  # the trimmed history was read ahead, not now
    chat.conversation.clear()


@pytest.mark.slow
def test_share_cores_decodes_on_half_the_threads_until_the_next_reply(decodes):
    chat = _llama(threads=2, max_new_tokens=12)
    try:
        assert chat.describe().endswith("on cpu, 2 threads") and chat.threads == 2
        pieces: list[str] = []
        shared_at: list[int] = []

        def on_text(piece: str) -> None:
            pieces.append(piece)
            if len(pieces) == 2:
                chat.share_cores()
                shared_at.append(len(decodes))

        chat.reply("Describe the city of Paris.", on_text)
        threads = [t for _, t in decodes]
        cut = shared_at[0]
        assert threads[:cut] == [2] * cut and threads[cut:] == [1] * (len(threads) - cut)
        assert len(threads) > cut
        decodes.clear()
        chat.prefill()  # while the reply plays: still beside TTS
        assert decodes and {t for _, t in decodes} == {1}
        decodes.clear()
        chat.reply("Thanks.", _quiet)
        assert decodes and {t for _, t in decodes} == {2}
    finally:
        chat.close()


@pytest.mark.slow
def test_a_character_split_across_tokens_is_shown_whole(chat, monkeypatch):
    chat.conversation.clear()
    want = "Ça va 😀 très bien"
    ids = chat._llm.tokenize(want.encode(), add_bos=False, special=False)
    assert any(chat._llm.detokenize([i]).decode("utf-8", "replace").count("\ufffd") for i in ids)
    forced = iter([*ids, chat._llm.token_eos()])
    monkeypatch.setattr(chat, "_pick", lambda: next(forced))
    pieces: list[str] = []
    text, _ = chat.reply("Say something.", pieces.append)
    assert text == want and "".join(pieces) == want
    assert not any("\ufffd" in piece for piece in pieces)
    chat.conversation.clear()


@pytest.mark.slow
def test_a_temperature_samples_instead_of_the_greedy_choice(chat, monkeypatch):
    monkeypatch.setattr(chat.config, "temperature", 1.0)
    monkeypatch.setattr(chat.config, "max_new_tokens", 12)
    replies = []
    for seed in (1, 1, 2, 3, 4):
        chat.conversation.clear()
        chat._rng = np.random.default_rng(seed)
        replies.append(chat.reply("Tell me about cats.", _quiet)[0])
    assert replies[0] == replies[1]  # the same random draws give the same reply
    assert len(set(replies)) >= 3, replies
    chat.conversation.clear()


@pytest.mark.slow
def test_the_prompt_has_the_transformers_tokenizers_ids(chat):
    from transformers import AutoTokenizer

    from assistant.llm.transformers_chat import resolve_weights

    folder, _ = resolve_weights(ModelStore(), "default")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    chat.conversation.clear()
    chat.conversation.add("Où est le café? 😀", "Il est là-bas.  Deux espaces,\nune ligne.")
    chat.conversation.add("Thanks!", "You're welcome.")
    messages = chat.conversation.messages("How many days are in a week?")
    want = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    assert chat.prompt_ids("How many days are in a week?") == list(want["input_ids"])
    chat.conversation.clear()


_QUESTIONS = {  # question: a word a sensible answer contains (None: any answer)
    "How many days are in a week?": r"\b(7|seven)\b",
    "What is the capital of France?": None,  # the 135M model answers in French, wrongly
    "What color is the sky on a clear day?": r"\bblue\b",
    "What is two plus two?": None,
    "What do bees make?": r"\bhoney\b",
    "What is the opposite of hot?": r"\bcold\b",
    "How many legs does a dog have?": r"\b(4|four)\b",
    "What is the boiling point of water in Celsius?": r"\b100\b",
}


@pytest.mark.slow
def test_the_answers_agree_with_the_transformers_backend(chat):
    """Both run the same Q4_1 weights (transformers de-quantised to float32); llama.cpp
    also rounds activations to 8 bits, so near-ties may go the other way."""
    from assistant.llm.transformers_chat import TransformersChat

    reference = TransformersChat(LlmConfig(quantize="none", path="stock"), ModelStore())
    identical = same_start = 0
    report = [f"llama.cpp: {chat.describe()}; transformers: {reference.describe()}"]
    try:
        for question, sensible in _QUESTIONS.items():
            answers = []
            for backend in (chat, reference):
                backend.conversation.clear()
                answers.append(backend.reply(question, _quiet)[0])
            ours, theirs = answers
            identical += ours == theirs
            same_start += ours.split()[:3] == theirs.split()[:3]
            report.append(
                f"{'==' if ours == theirs else '!='} {question}\n  {ours!r}\n  {theirs!r}"
            )
            assert ours, question
            if sensible:
                assert re.search(sensible, ours.lower()), (question, ours)
    finally:
        reference.close()
        chat.conversation.clear()
    report.append(f"identical {identical}/{len(_QUESTIONS)}, first 3 words {same_start}")
    print("\n".join(report))
    assert same_start >= len(_QUESTIONS) - 2 and identical >= len(_QUESTIONS) // 2, report


def test_a_truncated_gguf_is_a_model_error_in_one_line(tmp_path):
    folder, name = ModelStore().llm_source("default")
    broken = tmp_path / name
    data = (folder / name).read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError) as caught:
        _llama(model=str(broken))
    message = str(caught.value)
    assert "\n" not in message and str(broken) in message and "gguf" in message.lower()


def test_a_transformers_folder_is_a_config_error(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="gguf"):
        _llama(model=str(folder))


def test_without_llama_cpp_python_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(ConfigError, match="pip install llama-cpp-python==0.3.36"):
        _llama()
