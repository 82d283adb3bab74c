"""The local chat model: transformers, streamed token by token, cancellable mid-reply.

The embedded SmolLM2 ships as GGUF; transformers de-quantises GGUF on every load
(~15-20 s here), so the first start converts it once to a safetensors folder in the
cache and later starts memory-map that (well under a second).

On the CPU, ``llm.path`` picks between two ways to decode a token. "fast": the lean step
(llama_step.py) on int8 weights where the CPU has native bfloat16, on float32 weights
elsewhere, with the grouped attention for long caches (decode_attention.py); a model the
step cannot take is a ConfigError, since asking for "fast" and silently getting the slower
path would hide the cause. "stock": transformers' forward with its own sdpa attention, and
float32 weights unless ``llm.quantize`` is "int8": the reference the fast path is checked
against, and the way round a fast path that misbehaves. "auto": fast where the model
allows it, stock otherwise. If the lean step fails while a reply decodes (a private torch
API gone or rejecting its input), the model falls back to the stock forward for good and
the reply goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from assistant.compute import torch_compute
from assistant.config import LlmConfig
from assistant.errors import ConfigError, ModelError
from assistant.llm import decode_attention, torch_compat
from assistant.llm.prompt_cache import PromptCache
from assistant.llm.tokenized import NEXT_TURN_TOKENS, TokenizedChat
from assistant.model_store import CONVERTED_LLM, ModelStore, default_model_id

log = logging.getLogger(__name__)


class TransformersChat(TokenizedChat):
    """SmolLM2 (or another chat model) with its conversation and attention cache.

    Every torch call runs on one private thread. libgomp keeps a pool of worker threads
    per calling thread; once a second pool exists (say the model loaded on one thread and
    replies on a pipeline worker), a 2-core machine has more OpenMP threads than cores and
    libgomp makes them sleep between parallel regions. A token is ~200 small regions, so
    sleeping and waking at each made decoding much slower until all work stayed on one.
    """

    name = "transformers"

    def __init__(self, config: LlmConfig, store: ModelStore) -> None:
        from concurrent.futures import ThreadPoolExecutor

        super().__init__(config.system_prompt)
        self.config = config
        self._torch = ThreadPoolExecutor(1, thread_name_prefix="llm-torch")
        try:
            self._on_torch(self._load, store)
        except BaseException:
            self._torch.shutdown(wait=False)
            raise

    def _on_torch(self, fn, *args):
        return self._torch.submit(fn, *args).result()

    def _load(self, store: ModelStore) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # progress bars would garble the CLI's output
        config = self.config
        choice = torch_compute(config.device)
        self.device = choice.device
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        if config.path == "fast" and self.device != "cpu":
            raise ConfigError(
                f"llm.path is 'fast' but the lean step runs on the CPU, not {self.device}; "
                "use 'auto' or 'stock', or llm.device 'cpu'"
            )
        folder, gguf = resolve_weights(store, config.model)
        fast = self.device == "cpu" and config.path != "stock"
        int8 = self.device == "cpu" and _wants_int8(config.quantize, config.path)
        dtype = torch.float32 if int8 else getattr(torch, choice.compute_type)
        try:
            kwargs = {"gguf_file": gguf} if gguf else {"use_safetensors": True}
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
            if fast:
                kwargs["attn_implementation"] = decode_attention.register()
            elif self.device == "cpu":
                kwargs["attn_implementation"] = "sdpa"
            model = AutoModelForCausalLM.from_pretrained(
                folder, local_files_only=True, dtype=dtype, **kwargs
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load the LLM from {folder}: {exc}") from None
        if int8:
            from assistant.llm.int8_weights import quantize_linears

            model = quantize_linears(model)
        self._step = self._lean_step(model) if fast else None
        self.model = model.to(self.device).eval()
        if self.device == "cuda":
            # cuDNN's attention plans anew for every cache length it has not seen, and a
            # reply meets a new length at each token: the other kernels are several times
            # faster here (SmolLM2's shapes on an H200, tests/gpu/cuda_check.py).
            torch.backends.cuda.enable_cudnn_sdp(False)
        self.quantized = int8
        self._threads = torch.get_num_threads()
        self._sharing = False  # decoding beside TTS (see share_cores)
        self._using = self._threads
        if not self.tokenizer.chat_template:
            raise ModelError(f"the LLM in {folder} has no chat template; use an instruct model")
        self._stop_ids = _stop_token_ids(self.model, self.tokenizer)
        self._cache = PromptCache(lambda: DynamicCache(config=self.model.config))
        log.info("LLM: %s", self.describe())

    def _lean_step(self, model):
        """The lean one-token step for ``model``; None (or a ConfigError under "fast")
        where it cannot run it."""
        from assistant.llm.llama_step import LlamaStep

        why_not = LlamaStep.unsupported(model)
        if why_not is None:
            return LlamaStep(model)
        if self.config.path == "fast":
            raise ConfigError(
                f"llm.path is 'fast' but the lean step cannot run this model: {why_not}; "
                "use 'auto' or 'stock'"
            )
        return None

    @property
    def path(self) -> str:
        """How each token of a reply is decoded: "lean step" or "stock forward"."""
        return "lean step" if self._step is not None else "stock forward"

    def describe(self) -> str:
        attention = torch_compat.attention_implementation(self.model)
        return (
            f"transformers {self.precision} ({self.path}, {attention} attention) on {self.device}"
        )

    def close(self) -> None:
        self._torch.shutdown(wait=False)

    @property
    def precision(self) -> str:
        """What the weights are stored as, for reports: int8, float32, float16."""
        return "int8" if self.quantized else str(self.model.dtype).removeprefix("torch.")

    def prefill(self) -> None:
        """Read the system prompt and the conversation so far into the cache, so that the
        next question only reads its own tokens; the pipeline calls it after each reply.

        Trimming old turns changes everything after the system prompt, and re-reading a
        full history costs seconds on a CPU. So history is trimmed here, while nobody
        waits, and by a third of the budget at a time, so it happens once every several
        turns, not every turn.
        """
        with self._lock:
            self._trim(NEXT_TURN_TOKENS)
            self._on_torch(self._run, self._next_turn_opening())

    def _chat_tokens(self, user_text: str | None, generation: bool = True) -> list[int]:
        return list(
            self.tokenizer.apply_chat_template(
                self.conversation.messages(user_text),
                add_generation_prompt=generation,
                return_dict=True,
            )["input_ids"]
        )

    def reply(
        self,
        user_text: str,
        on_text: Callable[[str], None],
        cancelled: Callable[[], bool] = lambda: False,
    ) -> tuple[str, bool]:
        """Generate a reply, calling ``on_text`` with each new piece of text as it decodes.

        Returns (text, was_cancelled). A cancelled reply is kept in the memory as far as it
        got, so the next turn knows what the user already heard. Cancellation is checked
        before every token, so a stale reply costs at most one more forward pass.
        ``on_text`` is called on the model's own thread.
        """
        with self._lock:
            return self._on_torch(self._reply, user_text, on_text, cancelled)

    def share_cores(self) -> None:
        """Decode on half the threads (one on two cores) until the next reply starts: TTS
        works beside it.

        With the cores to itself the model runs fastest on all of them. Once TTS speaks
        beside it, torch's second OpenMP thread has to wait for a core at each of a token's
        ~200 parallel regions, and two threads decode several times slower than one
        (docs/performance.md). The pipeline calls this once its first phrase has audio.
        """
        self._sharing = True

    def _reply(self, user_text, on_text, cancelled) -> tuple[str, bool]:
        self._sharing = False
        prompt = self.prompt_ids(user_text)
        generated: list[int] = []
        shown = ""
        was_cancelled = False
        feed = prompt
        for _ in range(self.config.max_new_tokens):
            if cancelled():
                was_cancelled = True
                break
            token = self._pick(self._run(feed))
            if token in self._stop_ids:
                break
            generated.append(token)
            feed = prompt + generated
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            # A character split across tokens decodes as U+FFFD until it is whole.
            if not text.endswith("\ufffd") and len(text) > len(shown):
                on_text(text[len(shown) :])
                shown = text
        text = self.tokenizer.decode(generated, skip_special_tokens=True).strip()
        self.conversation.add(user_text, text)
        return text, was_cancelled

    def _run(self, ids: list[int]):
        """Logits after ``ids``, reading only the part the cache does not hold yet."""
        import torch

        threads = max(1, self._threads // 2) if self._sharing else self._threads
        if threads != self._using:
            torch.set_num_threads(threads)
            self._using = threads
        held = self._cache.reuse(ids)
        new = ids[held:]
        try:
            if len(new) == 1 and self._step is not None:
                try:
                    logits = self._step(new[0], self._cache.cache, position=held)
                except Exception as exc:  # the lean step only: the stock path redoes it
                    self._drop_step(exc)
                    held = self._cache.reuse(ids)
                    new = ids[held:]
                    logits = self._forward(new)
            else:
                logits = self._forward(new)
        except BaseException:
            self._cache.clear()  # the cache may hold part of ``new``: start it afresh
            raise
        self._cache.extend(new)
        return logits

    def _forward(self, new: list[int]):
        import torch

        with torch.inference_mode():
            return self.model(
                input_ids=torch.tensor([new], device=self.device),
                cache=self._cache.cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[0, -1]

    def _drop_step(self, exc: Exception) -> None:
        """Decode with transformers' forward from now on. The failed step may have written
        part of a token into the cache, so the cache starts afresh (the next forward re-reads
        the prompt and the reply so far, once)."""
        log.warning(
            "the lean decoding step failed (%s: %s); decoding with transformers' forward",
            type(exc).__name__,
            exc,
        )
        self._step = None
        self._cache.clear()

    def _pick(self, logits) -> int:
        import torch

        temperature = self.config.temperature
        if not temperature:
            return int(torch.argmax(logits))
        probabilities = torch.softmax(logits.float() / temperature, dim=-1)
        return int(torch.multinomial(probabilities, 1))


def _wants_int8(setting: str, path: str) -> bool:
    """int8 weights on the CPU: always for "int8" (if this CPU can), never for "none", and
    for "auto" on the fast path only, so that "stock" is transformers' float model."""
    from assistant.llm.int8_weights import int8_supported

    if setting == "none" or (setting == "auto" and path == "stock"):
        return False
    supported = int8_supported()
    if setting == "int8" and not supported:
        raise ConfigError(
            "llm.quantize is 'int8' but this torch or CPU has no int8 kernel with bfloat16 "
            "activations; use 'auto' or 'none'"
        )
    return supported


def _stop_token_ids(model, tokenizer) -> set[int]:
    """End-of-turn tokens: the tokenizer's EOS and whatever the generation config adds."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return {i for i in ids if i is not None}


def resolve_weights(
    store: ModelStore, reference: str, *, full: bool = False
) -> tuple[Path, str | None]:
    """Where to load the LLM from; the embedded GGUF is converted once into the cache."""
    folder, gguf = store.llm_source(reference)
    if reference != "default":
        return folder, gguf
    entry = store.catalog[default_model_id("llm")]
    converted = store.prepared(
        entry, lambda target: convert_gguf(folder, gguf, target), suffix=CONVERTED_LLM, full=full
    )
    return converted, None


def convert_gguf(folder: Path, gguf: str | None, target: Path) -> None:
    """De-quantise a GGUF checkpoint and save it as a safetensors folder into ``target``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
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
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
