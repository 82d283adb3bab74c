"""The LLM's speed-ups keep its answers: int8 weights and the cache kept across turns."""

from __future__ import annotations

import copy

import torch
from torch import nn

from assistant.config import LlmConfig
from assistant.llm.int8_weights import Int8Linear, quantize_linears
from assistant.llm.transformers_chat import TransformersChat
from assistant.model_store import ModelStore


def test_int8_linear_matches_the_float_layer():
    torch.manual_seed(0)
    linear = nn.Linear(256, 96)
    x = torch.randn(5, 3, 256)
    exact = linear(x)
    approx = Int8Linear(linear)(x)
    assert approx.shape == exact.shape
    error = (approx.float() - exact).norm() / exact.norm()
    assert error < 0.02, float(error)


def test_int8_model_makes_the_float_models_choices():
    """Teacher-forced over a real reply, int8 SmolLM2 picks the float model's next token."""
    config = LlmConfig(quantize="none", max_new_tokens=32)
    chat = TransformersChat(config, ModelStore())
    assert chat.precision == "float32"
    prompt = chat.prompt_ids("Why do cats purr?")
    chat.reply("Why do cats purr?", lambda _text: None)
    reply = chat.tokenizer(chat.conversation.turns[-1]["content"])["input_ids"]
    ids = torch.tensor([prompt + reply])
    int8 = quantize_linears(copy.deepcopy(chat.model))
    with torch.inference_mode():
        want = chat.model(input_ids=ids).logits[0, len(prompt) - 1 :].float()
        got = int8(input_ids=ids).logits[0, len(prompt) - 1 :].float()
    agree = (want.argmax(-1) == got.argmax(-1)).float().mean()
    cosine = nn.functional.cosine_similarity(want, got, dim=-1).min()
    assert agree >= 0.9 and cosine >= 0.97, (float(agree), float(cosine))


def test_a_new_turn_reads_only_what_the_cache_lacks(engines):
    chat = engines.chat
    chat.conversation.clear()
    for question in ("What is your name?", "Where do penguins live?"):
        chat.reply(question, lambda _text: None)
    question = "And what do they eat?"
    prompt = chat.prompt_ids(question)
    held = chat._cache.reuse(prompt)
    # Everything up to the end of the last reply is reused; only the new turn is read.
    assert len(prompt) > 60 and len(prompt) - held < 25, (len(prompt), held)
    cached = chat._run(prompt).float()
    chat._cache.clear()
    fresh = chat._run(prompt).float()
    assert cached.argmax() == fresh.argmax()
    assert nn.functional.cosine_similarity(cached, fresh, dim=0) > 0.995
    chat.conversation.clear()


def test_cache_follows_a_dropped_speculative_reply(engines):
    chat = engines.chat
    chat.conversation.clear()
    first, _ = chat.reply("Name a colour.", lambda _text: None)
    chat.reply("Name a fruit.", lambda _text: None)
    chat.forget_last()  # the user went on talking: that attempt never happened
    prompt = chat.prompt_ids("Name an animal.")
    held = chat._cache.reuse(prompt)
    assert "fruit" not in chat.tokenizer.decode(prompt)
    assert chat._cache.ids == prompt[:held] and held > 40
    chat.conversation.clear()


def test_history_is_trimmed_ahead_of_the_next_question(engines, monkeypatch):
    """A long session: prefill trims old turns by a third of the budget while nobody
    waits, so the next question still reads only its own tokens."""
    chat = engines.chat
    chat.conversation.clear()
    monkeypatch.setattr(chat.config, "context_tokens", 400)
    for i in range(8):
        chat.conversation.add(f"Question {i} about the sea?", "Waves and tides. " * 8)
    chat.prefill()
    kept = [t["content"] for t in chat.conversation.turns if t["role"] == "user"]
    assert kept[-1] == "Question 7 about the sea?" and "Question 0 about the sea?" not in kept
    prompt = chat.prompt_ids("And the moon?")
    assert len(prompt) <= 400 * 2 // 3 + 20  # trimmed well below the budget, not just under
    held = chat._cache.reuse(prompt)
    assert len(prompt) - held < 15, (len(prompt), held)
    chat.conversation.clear()


def test_long_history_decodes_with_grouped_attention(engines, monkeypatch):
    """One token attending to a long cache takes the grouped path (the CPU flash kernel
    is ~8x slower there) and gives the stock kernel's next-token logits."""
    from assistant.llm import decode_attention

    chat = engines.chat
    model = chat.model
    assert model.config._attn_implementation == decode_attention.NAME
    chat.conversation.clear()
    for i in range(6):
        chat.conversation.add(f"Tell me fact {i} about the sea.", "Waves are moved by wind. " * 4)
    prompt = chat.prompt_ids("And what about the moon?")
    assert len(prompt) > 2 * decode_attention._MIN_CACHED
    grouped_keys = []  # cache lengths the grouped path itself attended over
    grouped = decode_attention.grouped_attention

    def counted(query, keys, values, scale):
        grouped_keys.append(keys.shape[-2])
        return grouped(query, keys, values, scale)

    monkeypatch.setattr(decode_attention, "grouped_attention", counted)

    def next_logits(implementation: str):
        chat._cache.clear()
        model.set_attn_implementation(implementation)
        chat._run(prompt[:-1])  # the prompt is read in one block...
        return chat._run(prompt).float()  # ...and its last token decoded alone

    step, chat._step = chat._step, None  # models without the lean step (llama_step.py)
    try:
        stock = chat._on_torch(next_logits, "sdpa")
        assert grouped_keys == []
        fast = chat._on_torch(next_logits, decode_attention.NAME)
    finally:
        chat._step = step
        chat._cache.clear()
        chat.conversation.clear()
    assert grouped_keys == [len(prompt)] * model.config.num_hidden_layers
    assert stock.argmax() == fast.argmax()
    assert nn.functional.cosine_similarity(stock, fast, dim=0) > 0.999


def test_the_lean_step_computes_what_transformers_does(engines):
    """Teacher-forced over a real reply, the one-token step and the transformers forward
    give the same next-token logits, each from its own cache."""
    from transformers import DynamicCache

    chat = engines.chat
    step = chat._step
    assert step is not None  # the default model on this CPU takes the lean path
    layer = chat.model.model.layers[0].self_attn
    assert layer.k_proj.weight.data_ptr() > step._layers[0].qkv.data_ptr()  # views, no copy
    assert layer.q_proj.weight.untyped_storage().data_ptr() == (
        step._layers[0].qkv.untyped_storage().data_ptr()
    )
    chat.conversation.clear()
    prompt = chat.prompt_ids("Why do cats purr?")
    reply = chat.tokenizer("Cats purr when they are content, and also to soothe themselves.")

    def compare():
        caches = [DynamicCache(config=chat.model.config) for _ in range(2)]
        with torch.inference_mode():
            for cache in caches:
                chat.model(input_ids=torch.tensor([prompt]), cache=cache, use_cache=True)
            agree, cosines, position = [], [], len(prompt)
            for token in reply["input_ids"]:
                lean = step(token, caches[0], position).float()
                stock = (
                    chat.model(input_ids=torch.tensor([[token]]), cache=caches[1], use_cache=True)
                    .logits[0, -1]
                    .float()
                )
                agree.append(bool(lean.argmax() == stock.argmax()))
                cosines.append(float(nn.functional.cosine_similarity(lean, stock, dim=0)))
                position += 1
        return agree, cosines

    agree, cosines = chat._on_torch(compare)
    # bfloat16 activations: the two attention kernels round differently (min 0.994 seen).
    mean = sum(cosines) / len(cosines)
    assert sum(agree) >= len(agree) - 1 and mean > 0.999 and min(cosines) > 0.99, cosines


def test_decoding_beside_tts_takes_one_thread_until_the_next_reply(engines):
    chat = engines.chat
    chat.conversation.clear()

    def threads_per_token(question: str, share_after: int | None) -> list[int]:
        seen: list[int] = []

        def on_text(_text: str) -> None:  # called on the model's own thread
            seen.append(torch.get_num_threads())
            if len(seen) == share_after:
                chat.share_cores()

        chat.reply(question, on_text)
        return seen

    shared = threads_per_token("Tell me about the moon.", share_after=3)
    assert len(shared) > 5, shared
    half = max(1, chat._threads // 2)
    assert shared[:3] == [chat._threads] * 3 and set(shared[3:]) == {half}, shared
    # The exchange is read into the cache beside TTS too; the next reply has every core.
    chat.prefill()
    assert chat._on_torch(torch.get_num_threads) == half
    assert set(threads_per_token("And the sun?", share_after=None)) == {chat._threads}
    chat.conversation.clear()
