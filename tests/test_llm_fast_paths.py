"""The LLM's fast paths keep its answers: int8 weights, the lean one-token step on int8 and
float weights, the cache kept across turns, and torch_compat.py's public fall-backs.

Which precision the default model decodes in depends on the CPU: int8 where it runs
bfloat16 natively, float32 elsewhere. A test of such a path checks the one this CPU takes
and forces the other where it can run at all: float32 runs everywhere; int8 only where
``int8_supported()``, and elsewhere the test checks that it is refused.
"""

from __future__ import annotations

import copy
import logging
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from assistant.compute import ComputeChoice
from assistant.config import LlmConfig
from assistant.errors import ConfigError
from assistant.llm import decode_attention, torch_compat
from assistant.llm import transformers_chat as chat_module
from assistant.llm.int8_weights import Int8Linear, int8_supported, quantize_linears
from assistant.llm.llama_step import LlamaStep
from assistant.llm.transformers_chat import TransformersChat
from assistant.model_store import ModelStore

QUESTION = "Why do cats purr?"
ANSWER = "Cats purr when they are content, and also to soothe themselves."


@pytest.fixture(scope="module")
def float32_chats():
    """The default model with float32 weights, on the fast path and on the stock path."""
    lean = TransformersChat(LlmConfig(quantize="none", device="cpu"), ModelStore())
    stock = TransformersChat(LlmConfig(path="stock", device="cpu"), ModelStore())
    yield lean, stock
    lean.close()
    stock.close()


def tiny_llama(dtype: torch.dtype = torch.float32, **overrides):
    """A random-weight Llama small enough to build in a fast test."""
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = dict(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.2,  # livelier logits than the default 0.02
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**(settings | overrides))).eval()
    model.set_attn_implementation("sdpa")
    return model.to(dtype)


def lean_and_stock(model, step, cached: int = 150, tokens: int = 6):
    """(lean, stock) next-token logits over random tokens, each path with its own cache."""
    from transformers import DynamicCache

    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, vocab, (1, cached), generator=generator)
    following = torch.randint(0, vocab, (tokens,), generator=generator).tolist()
    caches = [DynamicCache(config=model.config) for _ in range(2)]
    pairs = []
    with torch.inference_mode():
        for cache in caches:
            model(input_ids=prompt, cache=cache, use_cache=True)
        for position, token in enumerate(following, start=cached):
            lean = step(token, caches[0], position).float()
            stock = model(input_ids=torch.tensor([[token]]), cache=caches[1], use_cache=True)
            pairs.append((lean, stock.logits[0, -1].float()))
    return pairs


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm())


# int8 weights


def test_int8_linear_matches_the_float_layer():
    torch.manual_seed(0)
    linear = nn.Linear(256, 96)
    x = torch.randn(5, 3, 256)
    exact = linear(x)
    approx = Int8Linear(linear)(x)
    assert approx.shape == exact.shape
    error = (approx.float() - exact).norm() / exact.norm()
    assert error < 0.02, float(error)


@pytest.mark.slow
def test_int8_model_makes_the_float_models_choices(float32_chats):
    """Teacher-forced over a real reply, int8 SmolLM2 picks the float model's next token."""
    chat = float32_chats[1]
    chat.conversation.clear()
    assert chat.precision == "float32"
    prompt = chat.prompt_ids(QUESTION)
    chat.reply(QUESTION, lambda _text: None)
    reply = chat.tokenizer(chat.conversation.turns[-1]["content"])["input_ids"]
    chat.conversation.clear()
    ids = torch.tensor([prompt + reply])
    int8 = quantize_linears(copy.deepcopy(chat.model))
    with torch.inference_mode():
        want = chat.model(input_ids=ids).logits[0, len(prompt) - 1 :].float()
        got = int8(input_ids=ids).logits[0, len(prompt) - 1 :].float()
    agree = (want.argmax(-1) == got.argmax(-1)).float().mean()
    cosine = nn.functional.cosine_similarity(want, got, dim=-1).min()
    assert agree >= 0.9 and cosine >= 0.97, (float(agree), float(cosine))


@pytest.mark.slow
def test_int8_runs_where_the_cpu_has_native_bfloat16_and_is_refused_elsewhere(transformers_chat):
    """The default precision follows the CPU; forcing int8 where it cannot run natively is
    a one-line ConfigError, not a model several times slower than float32."""
    if int8_supported():
        assert transformers_chat.precision == "int8" and transformers_chat.path == "lean step"
        forced = TransformersChat(LlmConfig(quantize="int8", path="stock"), ModelStore())
        try:
            assert forced.precision == "int8" and forced.path == "stock forward"
        finally:
            forced.close()
    else:
        assert transformers_chat.precision == "float32" and transformers_chat.path == "lean step"
        with pytest.raises(ConfigError, match="llm.quantize is 'int8'"):
            TransformersChat(LlmConfig(quantize="int8"), ModelStore())


def test_without_native_bfloat16_int8_is_refused_and_auto_keeps_float(monkeypatch):
    """What an AVX2-only CPU sees, forced here by the probe saying no."""
    monkeypatch.setattr(torch_compat, "bf16_native", lambda: False)
    assert not int8_supported()
    assert not chat_module._wants_int8("auto", "auto")
    assert not chat_module._wants_int8("none", "fast")
    with pytest.raises(ConfigError, match="llm.quantize is 'int8'"):
        chat_module._wants_int8("int8", "auto")


def test_the_stock_path_keeps_float_weights_unless_int8_is_asked_for():
    assert not chat_module._wants_int8("auto", "stock")
    assert chat_module._wants_int8("auto", "auto") == int8_supported()
    if int8_supported():
        assert chat_module._wants_int8("int8", "stock")
    else:
        with pytest.raises(ConfigError):
            chat_module._wants_int8("int8", "stock")


# the prompt cache and grouped attention


def test_a_new_turn_reads_only_what_the_cache_lacks(transformers_chat):
    chat = transformers_chat
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


def test_cache_follows_a_dropped_speculative_reply(transformers_chat):
    chat = transformers_chat
    chat.conversation.clear()
    first, _ = chat.reply("Name a colour.", lambda _text: None)
    chat.reply("Name a fruit.", lambda _text: None)
    chat.forget_last()  # the user went on talking: that attempt never happened
    prompt = chat.prompt_ids("Name an animal.")
    held = chat._cache.reuse(prompt)
    assert "fruit" not in chat.tokenizer.decode(prompt)
    assert chat._cache.ids == prompt[:held] and held > 40
    chat.conversation.clear()


def test_history_is_trimmed_ahead_of_the_next_question(transformers_chat, monkeypatch):
    """A long session: prefill trims old turns by a third of the budget while nobody
    waits, so the next question still reads only its own tokens."""
    chat = transformers_chat
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


def test_long_history_decodes_with_grouped_attention(transformers_chat, monkeypatch):
    """One token attending to a long cache takes the grouped path (the CPU flash kernel
    is ~8x slower there) and gives the stock kernel's next-token logits."""
    chat = transformers_chat
    model = chat.model
    assert torch_compat.attention_implementation(model) == decode_attention.NAME
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


# the lean one-token step


def _teacher_forced(chat):
    """(argmax agreements, cosines) of the lean step against the model's own forward over
    a real reply, each from its own cache."""
    from transformers import DynamicCache

    step = chat._step
    chat.conversation.clear()
    prompt = chat.prompt_ids(QUESTION)
    reply = chat.tokenizer(ANSWER)["input_ids"]

    def compare():
        caches = [DynamicCache(config=chat.model.config) for _ in range(2)]
        with torch.inference_mode():
            for cache in caches:
                chat.model(input_ids=torch.tensor([prompt]), cache=cache, use_cache=True)
            agree, cosines, position = [], [], len(prompt)
            for token in reply:
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

    return chat._on_torch(compare)


def _shares_the_fused_weights(chat) -> bool:
    """The model's query, key and value layers are row views of the step's fused weight."""
    layer = chat.model.model.layers[0].self_attn
    fused = chat._step._layers[0].qkv.weight
    return layer.k_proj.weight.data_ptr() > fused.data_ptr() and (
        layer.q_proj.weight.untyped_storage().data_ptr() == fused.untyped_storage().data_ptr()
    )


def test_the_lean_step_computes_what_transformers_does(transformers_chat):
    """The precision this CPU decodes in by default (int8 with native bfloat16, else
    float32): teacher-forced over a real reply, the lean step gives transformers' logits."""
    chat = transformers_chat
    assert chat.precision == ("int8" if int8_supported() else "float32")
    assert chat._step is not None and chat.path == "lean step"
    assert _shares_the_fused_weights(chat)
    agree, cosines = _teacher_forced(chat)
    mean = sum(cosines) / len(cosines)
    if chat.precision == "int8":
        # bfloat16 activations: the two attention kernels round differently (min 0.994 seen).
        assert sum(agree) >= len(agree) - 1 and mean > 0.999 and min(cosines) > 0.99, cosines
    else:
        assert all(agree) and min(cosines) > 0.99999, cosines


@pytest.mark.slow
def test_the_float32_lean_step_computes_what_transformers_does(float32_chats):
    """float32 forced (what CPUs without native bfloat16 decode in): the same check."""
    chat = float32_chats[0]
    assert chat.precision == "float32" and chat.path == "lean step"
    assert chat.describe() == "transformers float32 (lean step, grouped_decode attention) on cpu"
    assert _shares_the_fused_weights(chat)
    agree, cosines = _teacher_forced(chat)
    assert all(agree) and min(cosines) > 0.99999, cosines


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_lean_step_takes_float_weights_of_any_width(dtype):
    model = tiny_llama(dtype)
    assert LlamaStep.supports(model)
    step = LlamaStep(model)
    q_proj = model.model.layers[1].self_attn.q_proj.weight
    assert q_proj.untyped_storage().data_ptr() == (
        step._layers[1].qkv.weight.untyped_storage().data_ptr()
    )
    pairs = lean_and_stock(model, step)
    worst = max(relative_error(lean, stock) for lean, stock in pairs)
    assert worst < (1e-5 if dtype == torch.float32 else 2e-2), worst
    assert all(lean.argmax() == stock.argmax() for lean, stock in pairs)


def test_the_lean_step_takes_int8_weights_where_the_cpu_runs_them():
    model = quantize_linears(tiny_llama())
    if not int8_supported():
        with pytest.raises(ConfigError, match="llm.quantize is 'int8'"):
            chat_module._wants_int8("int8", "fast")
        return
    assert LlamaStep.supports(model)
    pairs = lean_and_stock(model, LlamaStep(model))
    worst = max(relative_error(lean, stock) for lean, stock in pairs)
    assert worst < 3e-2, worst


def test_the_lean_step_says_which_models_it_cannot_run():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    assert LlamaStep.unsupported(tiny_llama()) is None
    assert "biased" in LlamaStep.unsupported(tiny_llama(attention_bias=True))
    mixed = tiny_llama()
    mixed.model.layers[0].mlp.down_proj = Int8Linear(mixed.model.layers[0].mlp.down_proj)
    assert "not all plain or all int8" in LlamaStep.unsupported(mixed)
    qwen2 = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    assert LlamaStep.unsupported(qwen2) == "Qwen2ForCausalLM is not a Llama model"
    assert not LlamaStep.supports(qwen2)
    del mixed.model.rotary_emb  # a release that moved it: declined, not an AttributeError
    assert "not laid out" in LlamaStep.unsupported(mixed)


# llm.path and the fall-back at run time


@pytest.mark.slow
def test_the_stock_path_is_transformers_own_forward(float32_chats):
    stock = float32_chats[1]
    assert stock._step is None and stock.precision == "float32"
    assert stock.describe() == "transformers float32 (stock forward, sdpa attention) on cpu"


@pytest.mark.slow
def test_the_fast_path_is_for_the_cpu(monkeypatch):
    monkeypatch.setattr(chat_module, "torch_compute", lambda _d: ComputeChoice("cuda", "float16"))
    with pytest.raises(ConfigError, match="llm.path is 'fast' but the lean step runs on the CPU"):
        TransformersChat(LlmConfig(path="fast"), ModelStore())


@pytest.mark.slow
def test_a_lean_step_failing_mid_reply_hands_over_to_the_stock_forward(float32_chats, caplog):
    """The step raises at its fourth token (a private kernel missing or rejecting its
    input): one warning, and the reply carries on to the stock path's own greedy reply."""
    lean, stock = float32_chats
    for chat in float32_chats:
        chat.conversation.clear()
    want, _ = stock.reply(QUESTION, lambda _text: None)
    assert len(stock.tokenizer(want)["input_ids"]) > 8, want
    real, calls = lean._step, []

    def failing(token, cache, position):
        calls.append(token)
        if len(calls) == 4:
            raise RuntimeError("the int8 kernel rejects its input")
        return real(token, cache, position)

    lean._step = failing
    pieces: list[str] = []
    try:
        with caplog.at_level(logging.WARNING, logger=chat_module.__name__):
            got, cancelled = lean.reply(QUESTION, pieces.append)
        described = lean.describe()
        again, _ = lean.reply("And dogs?", lambda _text: None)
    finally:
        lean._step = real
        lean._cache.clear()
        for chat in float32_chats:
            chat.conversation.clear()
    assert got == want and not cancelled and "".join(pieces).strip() == got
    assert len(calls) == 4  # dropped for good: the next reply never called it either
    assert "(stock forward," in described and again.strip()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "the lean decoding step failed" in warnings[0], warnings


# torch_compat.py: each private API's public fall-back


def _int8_operands(rows: int = 3):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 64, generator=generator).to(torch.bfloat16)
    weight = torch.randint(-127, 128, (48, 64), generator=generator, dtype=torch.int8)
    scale = (torch.rand(48, generator=generator) / 100).to(torch.bfloat16)
    return x, weight, scale


def test_int8_products_without_the_private_kernel_widen_the_weights(monkeypatch):
    x, weight, scale = _int8_operands()
    want = torch._weight_int8pack_mm(x, weight, scale)
    linear = nn.Linear(64, 48, bias=False)
    layer_want = Int8Linear(linear)(x)
    monkeypatch.delattr(torch, "_weight_int8pack_mm")
    assert not torch_compat.has_int8_kernel() and not int8_supported()
    assert relative_error(torch_compat.int8_mm(x, weight, scale), want) < 1e-2
    assert relative_error(Int8Linear(linear)(x), layer_want) < 1e-2


def test_int8_products_survive_a_kernel_that_rejects_its_input(monkeypatch, caplog):
    x, weight, scale = _int8_operands()
    want = torch._weight_int8pack_mm(x, weight, scale)
    calls = []

    def rejecting(*args):
        calls.append(args)
        raise RuntimeError("no kernel for this CPU")

    monkeypatch.setattr(torch_compat, "_int8_kernel_failed", False)
    monkeypatch.setattr(torch, "_weight_int8pack_mm", rejecting)
    with caplog.at_level(logging.WARNING, logger=torch_compat.__name__):
        first = torch_compat.int8_mm(x, weight, scale)
        second = torch_compat.int8_mm(x, weight, scale)
    assert relative_error(first, want) < 1e-2 and torch.equal(first, second)
    assert len(calls) == 1 and not torch_compat.has_int8_kernel()  # asked once, then skipped
    assert ["torch's int8 kernel failed" in r.getMessage() for r in caplog.records] == [True]


def test_a_wrong_input_is_not_blamed_on_the_int8_kernel(monkeypatch):
    x, weight, scale = _int8_operands()
    monkeypatch.setattr(torch_compat, "_int8_kernel_failed", False)
    with pytest.raises(RuntimeError):
        torch_compat.int8_mm(x[:, :32], weight, scale)
    assert torch_compat.has_int8_kernel()


def test_the_bfloat16_probe_says_no_when_torch_cannot_answer(monkeypatch):
    monkeypatch.setattr(torch.ops, "mkldnn", SimpleNamespace())
    assert torch_compat.bf16_native() is False and not int8_supported()

    def failing():
        raise RuntimeError("oneDNN is not built in")

    monkeypatch.setattr(torch.ops, "mkldnn", SimpleNamespace(_is_mkldnn_bf16_supported=failing))
    assert torch_compat.bf16_native() is False


def test_attention_falls_back_to_sdpa_where_transformers_refuses_the_registration(
    monkeypatch, caplog
):
    from transformers import AttentionInterface

    def refuse(*_args, **_kwargs):
        raise TypeError("register() takes no such function")

    monkeypatch.setattr(AttentionInterface, "register", refuse)
    with caplog.at_level(logging.WARNING, logger=torch_compat.__name__):
        assert decode_attention.register() == "sdpa"
    assert "using sdpa" in caplog.text
    model = tiny_llama()
    model.set_attn_implementation(decode_attention.register())  # the name it can load with
    assert torch_compat.attention_implementation(model) == "sdpa"


def test_the_stock_attention_and_mask_are_found_where_the_registries_lack_them(monkeypatch):
    import transformers.masking_utils
    import transformers.modeling_utils
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    assert torch_compat.stock_attention() is sdpa_attention_forward
    monkeypatch.setattr(transformers.modeling_utils, "ALL_ATTENTION_FUNCTIONS", {})
    monkeypatch.setattr(transformers.masking_utils, "ALL_MASK_ATTENTION_FUNCTIONS", {})
    assert torch_compat.stock_attention() is sdpa_attention_forward
    assert torch_compat._stock_mask() is transformers.masking_utils.sdpa_mask
    monkeypatch.delattr(transformers.masking_utils, "sdpa_mask")
    assert torch_compat._stock_mask() is None
    assert torch_compat.register_attention("never_registered", lambda *a, **k: None) == "sdpa"


def test_the_grouped_attention_gives_the_stock_kernels_logits(monkeypatch):
    """Registered, the grouped attention decodes a long cache as sdpa does."""
    name = decode_attention.register()
    assert name == decode_attention.NAME
    grouped, attended = decode_attention.grouped_attention, []

    def counted(query, keys, values, scale):
        attended.append(keys.shape[-2])
        return grouped(query, keys, values, scale)

    monkeypatch.setattr(decode_attention, "grouped_attention", counted)
    model = tiny_llama()
    logits = {}
    for implementation in ("sdpa", name):
        model.set_attn_implementation(implementation)
        assert torch_compat.attention_implementation(model) == implementation
        logits[implementation] = [
            stock for _lean, stock in lean_and_stock(model, lambda *_a: torch.zeros(1))
        ]
    worst = max(relative_error(a, b) for a, b in zip(logits["sdpa"], logits[name], strict=True))
    assert worst < 1e-5, worst
    layers = model.config.num_hidden_layers
    assert attended == [length for length in range(151, 157) for _ in range(layers)], attended


def test_the_attention_a_model_runs_is_read_from_either_attribute():
    assert torch_compat.attention_implementation(tiny_llama()) == "sdpa"
    public = SimpleNamespace(config=SimpleNamespace(attn_implementation="eager"))
    assert torch_compat.attention_implementation(public) == "eager"
    assert torch_compat.attention_implementation(SimpleNamespace(config=object())) == "unknown"


def test_decoding_beside_tts_takes_one_thread_until_the_next_reply(transformers_chat):
    chat = transformers_chat
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
