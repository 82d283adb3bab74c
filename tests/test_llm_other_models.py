"""A chat model other than the default Llama runs through the app on transformers' forward.

The lean step (llama_step.py) takes exactly the Llama computation; any other architecture
a user points ``--llm-model`` at must still answer, through the stock path. The model here
is a tiny Qwen2 (biased query/key/value projections, unlike Llama) with random weights and
a byte-level BPE tokenizer trained in the test, so nothing is downloaded: its replies are
gibberish, and what is checked is that a whole spoken turn completes around them.
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
import torch
from audio_env import speak

from assistant.config import LlmConfig
from assistant.errors import ConfigError
from assistant.llm.llama_step import LlamaStep
from assistant.llm.transformers_chat import TransformersChat
from assistant.model_store import ModelStore

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
    "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SENTENCES = [
    "system user assistant",
    "You are a friendly voice assistant running on the user's own computer.",
    "What is the capital of France? Paris is the capital of France.",
    "The weather is nice today, and the sun is warm. Answer in one or two short sentences.",
]


def save_tiny_qwen2(folder: Path) -> Path:
    """A random-weight Qwen2 chat model with a ChatML tokenizer, saved as transformers would."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = byte_level
    tokenizer.decoder = decoders.ByteLevel()
    # Printable characters only, so that any reply decodes to text a voice can read.
    printable = string.ascii_letters + string.digits + " .,?!'-"
    alphabet = sorted(set(byte_level.pre_tokenize_str(printable)[0][0]))
    trainer = trainers.BpeTrainer(
        vocab_size=160,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
    )
    tokenizer.train_from_iterator(SENTENCES, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    wrapped.chat_template = CHATML
    wrapped.save_pretrained(folder)
    config = Qwen2Config(
        vocab_size=len(wrapped),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=wrapped.eos_token_id,
        pad_token_id=wrapped.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def qwen2_folder(tmp_path_factory) -> Path:
    return save_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.mark.slow  # builds a TransformersChat (conftest.py), if a tiny one
def test_the_lean_step_declines_qwen2_and_the_reply_takes_the_stock_forward(qwen2_folder):
    chat = TransformersChat(LlmConfig(model=str(qwen2_folder), max_new_tokens=8), ModelStore())
    try:
        assert not LlamaStep.supports(chat.model)
        assert LlamaStep.unsupported(chat.model) == "Qwen2ForCausalLM is not a Llama model"
        assert chat._step is None and chat.path == "stock forward"
        assert "(stock forward," in chat.describe()
        text, cancelled = chat.reply("What is the capital of France?", lambda _text: None)
        assert isinstance(text, str) and not cancelled
        assert chat.conversation.turns[-1] == {"role": "assistant", "content": text}
    finally:
        chat.close()


@pytest.mark.slow  # builds a TransformersChat (conftest.py), if a tiny one
def test_asking_for_the_fast_path_on_qwen2_is_a_one_line_error(qwen2_folder):
    with pytest.raises(ConfigError) as caught:
        TransformersChat(LlmConfig(model=str(qwen2_folder), path="fast"), ModelStore())
    message = str(caught.value)
    assert "\n" not in message and "llm.path is 'fast'" in message, message
    assert "Qwen2ForCausalLM" in message and "'stock'" in message, message


@pytest.mark.slow  # builds a TransformersChat (conftest.py), if a tiny one
def test_the_stock_path_keeps_transformers_attention_and_float_weights(qwen2_folder):
    chat = TransformersChat(
        LlmConfig(model=str(qwen2_folder), path="stock", device="cpu"), ModelStore()
    )
    try:
        assert chat.describe() == "transformers float32 (stock forward, sdpa attention) on cpu"
    finally:
        chat.close()


@pytest.mark.slow
def test_a_spoken_turn_through_the_app_with_a_qwen2_model(qwen2_folder, tmp_path):
    """``voice-assistant chat`` with Whisper and Piper around the tiny Qwen2: the turn
    completes and the log names the stock path."""
    question = speak("What is the capital of France?", tmp_path / "question.wav")
    settings = tmp_path / "settings.toml"
    settings.write_text("[llm]\nmax_new_tokens = 12\n", encoding="utf-8")
    reply = tmp_path / "reply.wav"
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "--config", str(settings), "-v"]
        + ["--llm-model", str(qwen2_folder), "chat"]
        + ["--input", str(question), "--output", str(reply), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert "capital" in data["transcript"].lower(), data
    assert isinstance(data["reply"], str), data
    if data["reply"].strip():
        audio, rate = soundfile.read(reply)
        assert rate > 0 and len(audio) > 0
    assert "LLM: transformers " in result.stderr and "(stock forward," in result.stderr, (
        result.stderr[-3000:]
    )
