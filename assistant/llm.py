"""The local chat model: transformers, streamed token by token, cancellable mid-reply.

The embedded SmolLM2 ships as GGUF; transformers de-quantises GGUF on every load
(~15-20 s here), so the first start converts it once to a safetensors folder in the
cache and later starts memory-map that (well under a second).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.compute import torch_compute
from assistant.config import LlmConfig
from assistant.errors import ModelError
from assistant.model_store import ModelStore


@dataclass
class Conversation:
    """System prompt plus alternating turns, trimmed oldest-first to a token budget."""

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


class ChatModel:
    def __init__(self, config: LlmConfig, store: ModelStore) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # progress bars would garble the CLI's output
        self.config = config
        choice = torch_compute(config.device)
        self.device = choice.device
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        folder, gguf = resolve_weights(store, config.model)
        dtype = getattr(torch, choice.compute_type)
        try:
            kwargs = {"gguf_file": gguf} if gguf else {"use_safetensors": True}
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
            self.model = AutoModelForCausalLM.from_pretrained(
                folder, local_files_only=True, dtype=dtype, **kwargs
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load the LLM from {folder}: {exc}") from None
        self.model.to(self.device).eval()
        if not self.tokenizer.chat_template:
            raise ModelError(f"the LLM in {folder} has no chat template; use an instruct model")
        self.conversation = Conversation(config.system_prompt)
        self._lock = threading.Lock()  # one generation at a time

    def forget_last(self) -> None:
        """Drop the last exchange (a reply that was only ever speculative)."""
        with self._lock:
            self.conversation.forget_last()

    def prompt_ids(self, user_text: str):
        """Token ids of the chat prompt, dropping the oldest turns past the context budget."""
        budget = self.config.context_tokens
        while True:
            ids = self.tokenizer.apply_chat_template(
                self.conversation.messages(user_text),
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )["input_ids"]
            if ids.shape[1] <= budget or not self.conversation.turns:
                return ids[:, -budget:]
            del self.conversation.turns[:2]

    def reply(
        self,
        user_text: str,
        on_text: Callable[[str], None],
        cancelled: Callable[[], bool] = lambda: False,
    ) -> tuple[str, bool]:
        """Generate a reply, calling ``on_text`` with each new piece of text as it decodes.

        Returns (text, was_cancelled). A cancelled reply is kept in the memory as far as it
        got, so the next turn knows what the user already heard.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        pieces: list[str] = []

        class _Streamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    pieces.append(text)
                    on_text(text)

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
                stop = cancelled()
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool)

        cfg = self.config
        with self._lock:
            ids = self.prompt_ids(user_text).to(self.device)
            sampling = (
                {"do_sample": True, "temperature": cfg.temperature}
                if cfg.temperature
                else {"do_sample": False}
            )
            with torch.inference_mode():
                self.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=cfg.max_new_tokens,
                    streamer=_Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True),
                    stopping_criteria=StoppingCriteriaList([_Cancel()]),
                    pad_token_id=self.tokenizer.eos_token_id,
                    **sampling,
                )
            text = "".join(pieces).strip()
            was_cancelled = cancelled()
            self.conversation.add(user_text, text)
            return text, was_cancelled


def resolve_weights(store: ModelStore, reference: str) -> tuple[Path, str | None]:
    """Where to load the LLM from; the embedded GGUF is converted on first use."""
    folder, gguf = store.llm_source(reference)
    if reference != "default":
        return folder, gguf
    cached = store.llm_cache_dir()
    if not (cached / "model.safetensors").is_file() or not (cached / "config.json").is_file():
        convert_gguf(folder, gguf, cached)
    return cached, None


def convert_gguf(folder: Path, gguf: str | None, target: Path) -> None:
    """De-quantise a GGUF checkpoint once and save it as a safetensors folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tmp = target.with_name(target.name + ".tmp")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read the GGUF model {folder / str(gguf)}: {exc}") from None
    # The weights are plain float tensors after loading; only the marker blocks saving.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
