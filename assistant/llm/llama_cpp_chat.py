"""The local chat model on llama.cpp: the GGUF file run as it is, streamed and cancellable.

On CPUs without native bfloat16 (most desktops) transformers decodes the small model in
float32, several times slower than llama.cpp's quantised kernels; llama.cpp also loads the
GGUF directly, with no conversion and no torch import.

Every llama.cpp call runs on one private thread, as in the transformers backend: libgomp
keeps a team of worker threads per calling thread, and once a second team exists (the
model warmed up on the main thread, replies on a pipeline worker) libgomp counts more
threads than cores and stops spinning at barriers. ggml passes hundreds of barriers a token,
and sleeping and waking at each made decoding from a second thread much slower
(tests/bench/llm_backends.py --threads-check measures it).

A base model with no chat template (the interpreter's Gemma 3 270M) is loaded with
``completion_only`` and used through ``complete``: raw few-shot text, whose fixed opening
stays in the KV cache from one call to the next like a chat's history.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from assistant.config import LlmConfig
from assistant.errors import ConfigError, LlmError, ModelError
from assistant.llm.tokenized import NEXT_TURN_TOKENS, TokenizedChat
from assistant.model_store import ModelStore

INSTALL_HINT = "pip install llama-cpp-python==0.3.36 (or make setup)"


class LlamaCppChat(TokenizedChat):
    """A GGUF chat model with its conversation and llama.cpp's attention (KV) cache.

    The cache holds the keys and values of ``self._llm.input_ids[:n_tokens]``. Each
    prompt repeats the system prompt and the conversation so far, so a prompt only
    evaluates what follows its longest common prefix with those tokens; a forgotten
    speculative reply or trimmed turns just shorten the prefix.
    """

    name = "llama.cpp"

    def __init__(
        self, config: LlmConfig, store: ModelStore, *, completion_only: bool = False
    ) -> None:
        """``completion_only``: the model need not have a chat template, and only
        ``complete`` works (``reply`` raises an ``LlmError``)."""
        from concurrent.futures import ThreadPoolExecutor

        super().__init__(config.system_prompt)
        self.config = config
        self.completion_only = completion_only
        try:
            import llama_cpp
        except ImportError:
            raise ConfigError(
                f"llm.backend is 'llama.cpp' but llama-cpp-python is not installed. "
                f"Fix: {INSTALL_HINT}"
            ) from None
        self._lib = llama_cpp
        self.path = gguf_path(store, config.model)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="llm-llama")
        try:
            self._on_worker(self._load)
        except BaseException:
            self._worker.shutdown(wait=False)
            raise

    def _on_worker(self, fn, *args):
        return self._worker.submit(fn, *args).result()

    def _load(self) -> None:
        config, llama_cpp = self.config, self._lib
        _quiet_native_log(llama_cpp)
        self._threads = config.threads if config.threads > 0 else physical_cores()
        self._sharing = False  # decoding beside TTS (see share_cores)
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=config.context_tokens + config.max_new_tokens,
                n_threads=self._threads,
                n_threads_batch=self._threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            why = _first_line(exc)  # llama.cpp's own reason, where it adds more than the path
            why = "" if str(self.path) in why else f" ({why})"
            raise ModelError(
                f"cannot load the GGUF model {self.path}{why}: the file is truncated, corrupt "
                "or of a model this llama.cpp does not know. Fix: use an intact .gguf file "
                "(reinstall the default one: make setup)"
            ) from None
        self._using = self._threads
        self._vocab = self._llm.n_vocab()
        self._template = None if self.completion_only else _chat_template(self._llm, self.path)
        vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._stop_ids = {
            i for i in range(self._vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)
        } or {self._llm.token_eos()}
        self._rng = None  # numpy's generator, made on first sampled (temperature > 0) token

    # -- reports ----------------------------------------------------------------------
    def describe(self) -> str:
        return (
            f"llama.cpp {self.quantization} ({self.model_name}) on cpu, "
            f"{self._threads} thread{'s' if self._threads != 1 else ''}"
        )

    @property
    def model_name(self) -> str:
        """The file name without its quantisation: "SmolLM2-135M-Instruct"."""
        stem = self.path.stem
        quant = self.quantization
        for sep in (".", "-", "_"):
            if quant and stem.lower().endswith(sep + quant.lower()):
                return stem[: -len(quant) - 1]
        return stem

    @property
    def quantization(self) -> str:
        """How the weights are stored, from llama.cpp's own description ("llama ?B Q4_1"
        gives "Q4_1", "gemma3 270M Q4_K - Medium" gives "Q4_K_M")."""
        import ctypes

        buf = ctypes.create_string_buffer(128)
        self._lib.llama_model_desc(self._llm.model, buf, len(buf))
        desc = buf.value.decode("utf-8", "replace").split(maxsplit=2)
        quant = desc[-1] if desc else "gguf"
        for size in ("Small", "Medium", "Large"):
            quant = quant.replace(f" - {size}", f"_{size[0]}")
        return quant

    @property
    def threads(self) -> int:
        """Threads llama.cpp decodes on now."""
        return int(self._lib.llama_n_threads(self._llm.ctx))

    @property
    def cached_tokens(self) -> list[int]:
        """The tokens whose keys and values the KV cache holds, in order."""
        return [int(t) for t in self._llm.input_ids[: self._llm.n_tokens]]

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            self._worker.submit(llm.close).result()
        self._worker.shutdown(wait=False)

    # -- the prompt -------------------------------------------------------------------
    def tokenize_messages(self, messages: list[dict[str, str]], generation: bool) -> list[int]:
        """Token ids of ``messages`` in the model's chat template (the GGUF's own)."""
        if self._template is None:
            raise LlmError(f"{self.path.name} was loaded to complete raw text only; it cannot chat")
        text = self._template.render(
            messages=messages,
            add_generation_prompt=generation,
            bos_token=self._token_text(self._llm.token_bos()),
            eos_token=self._token_text(self._llm.token_eos()),
        )
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", "replace")

    def _chat_tokens(self, user_text: str | None, generation: bool = True) -> list[int]:
        return self.tokenize_messages(self.conversation.messages(user_text), generation)

    # -- generation -------------------------------------------------------------------
    def prefill(self) -> None:
        """Read the system prompt and the conversation so far into the KV cache, so that
        the next question only evaluates its own tokens; the pipeline calls it after each
        reply, while the reply plays.

        Trimming old turns changes everything after the system prompt and re-reading the
        whole history costs seconds, so history is trimmed here, while nobody waits, by a
        third of the budget at a time.
        """
        with self._lock:
            self._on_worker(self._prefill)

    def _prefill(self) -> None:
        self._trim(NEXT_TURN_TOKENS)
        opening = self._next_turn_opening()
        if len(opening) > self._hold(opening, keep_last=False):
            self._eval(opening[self._llm.n_tokens :])

    def share_cores(self) -> None:
        """Decode on half the threads (one on two cores) until the next reply starts: TTS
        works beside it.

        ggml's threads spin at a barrier after every operation of a token; when TTS holds
        one of the cores, the thread that lost it stalls all the others at each barrier.
        The pipeline calls this once the reply's first phrase has audio; it takes effect
        before the next token (and for prefill, which runs while the reply plays).
        """
        self._sharing = True

    def reply(
        self,
        user_text: str,
        on_text: Callable[[str], None],
        cancelled: Callable[[], bool] = lambda: False,
    ) -> tuple[str, bool]:
        """Generate a reply, calling ``on_text`` with each new piece of text as it decodes.

        Returns (text, was_cancelled). A cancelled reply is kept in the memory as far as it
        got. Cancellation is checked before every token, so a stale reply costs at most one
        more token. ``on_text`` and ``cancelled`` are called on the model's own thread.
        """
        with self._lock:
            return self._on_worker(self._reply, user_text, on_text, cancelled)

    def _reply(self, user_text, on_text, cancelled) -> tuple[str, bool]:
        self._sharing = False
        prompt = self.prompt_ids(user_text)
        text, was_cancelled = self._generate(prompt, on_text, cancelled, self.config.max_new_tokens)
        self.conversation.add(user_text, text)
        return text, was_cancelled

    def complete(
        self,
        prompt: str,
        on_text: Callable[[str], None],
        cancelled: Callable[[], bool] = lambda: False,
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
    ) -> tuple[str, bool]:
        """Continue ``prompt`` (raw text after the model's BOS token), stopping before the
        first of ``stop``; the conversation memory is not touched. Cancellation is checked
        before every token, as in ``reply``."""
        with self._lock:
            return self._on_worker(self._complete, prompt, on_text, cancelled, max_tokens, stop)

    def _complete(self, prompt, on_text, cancelled, max_tokens, stop) -> tuple[str, bool]:
        self._sharing = False
        ids = self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        room = self._llm.n_ctx() - len(ids)
        if room < 1:
            raise LlmError(
                f"the prompt takes {len(ids)} tokens and {self.model_name} holds "
                f"{self._llm.n_ctx()}; shorten it"
            )
        return self._generate(ids, on_text, cancelled, min(max_tokens, room), tuple(stop))

    def _generate(self, prompt, on_text, cancelled, limit, stop=()) -> tuple[str, bool]:
        """Decode after ``prompt`` (its cached prefix kept) up to ``limit`` tokens, an
        end-of-generation token or a ``stop`` string; returns (stripped text, cancelled)."""
        self._hold(prompt, keep_last=True)
        feed = prompt[self._llm.n_tokens :]
        pieces = bytearray()
        shown = text = ""
        was_cancelled = False
        for _ in range(limit):
            if cancelled():
                was_cancelled = True
                break
            self._eval(feed)
            token = self._pick()
            if token in self._stop_ids:
                break
            feed = [token]
            pieces += self._llm.detokenize([token])
            # A character split across tokens decodes as U+FFFD until it is whole.
            text, ended = until_stop(pieces.decode("utf-8", "replace").rstrip("\ufffd"), stop)
            ready = text if ended else text[: len(text) - _stop_start(text, stop)]
            if len(ready) > len(shown):
                on_text(ready[len(shown) :])
                shown = ready
            if ended:
                break
        return text.strip(), was_cancelled

    def _hold(self, ids: list[int], keep_last: bool) -> int:
        """Shrink the KV cache to its longest common prefix with ``ids``; returns its length.

        With ``keep_last`` the last token of ``ids`` is left out even if cached: its logits
        pick the first token, and llama.cpp keeps only the last evaluation's logits.
        """
        llm = self._llm
        cached = llm.input_ids[: llm.n_tokens]
        limit = min(len(cached), len(ids) - 1 if keep_last else len(ids))
        keep = 0
        while keep < limit and cached[keep] == ids[keep]:
            keep += 1
        if keep < llm.n_tokens and not _forget_from(self._lib, llm, keep):
            keep = 0  # a recurrent model cannot drop a suffix: start afresh
            llm.reset()
        llm.n_tokens = keep
        return keep

    def _eval(self, ids: list[int]) -> None:
        """Evaluate ``ids`` after the cached tokens (on half the threads when sharing)."""
        threads = max(1, self._threads // 2) if self._sharing else self._threads
        if threads != self._using:
            self._lib.llama_set_n_threads(self._llm.ctx, threads, threads)
            self._using = threads
        try:
            self._llm.eval(ids)
        except RuntimeError as exc:
            self._llm.reset()  # the cache may hold part of ``ids``: start it afresh
            raise LlmError(
                f"llama.cpp failed to decode ({exc}); the next reply starts afresh"
            ) from None

    def _logits(self):
        """The last evaluated token's logits: a numpy view of llama.cpp's buffer, valid
        until the next evaluation."""
        import numpy as np

        pointer = self._lib.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self._vocab,))

    def _pick(self) -> int:
        import numpy as np

        logits = self._logits()
        temperature = self.config.temperature
        if not temperature:
            return int(np.argmax(logits))
        if self._rng is None:
            self._rng = np.random.default_rng()
        scaled = logits.astype(np.float64) / temperature
        probabilities = np.exp(scaled - scaled.max())
        probabilities /= probabilities.sum()
        return int(self._rng.choice(self._vocab, p=probabilities))


def until_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first of the ``stop`` strings, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


def _stop_start(text: str, stop: Sequence[str]) -> int:
    """How many characters at the end of ``text`` could begin a stop string: they are
    not shown until the next token tells."""
    return max(
        (n for s in stop for n in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:n])),
        default=0,
    )


def _forget_from(lib, llm, position: int) -> bool:
    """Drop the KV cache from ``position`` on; False where the model's memory cannot."""
    memory = lib.llama_get_memory(llm.ctx)
    return memory is None or bool(lib.llama_memory_seq_rm(memory, 0, position, -1))


def _chat_template(llm, path: Path):
    """The GGUF's chat template, compiled the way transformers compiles it, so that the
    prompt's token ids are the ones the transformers backend reads."""
    source = llm.metadata.get("tokenizer.chat_template")
    if not source:
        raise ModelError(f"the LLM {path} has no chat template; use an instruct model")
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise ModelError(f"the chat template of {path} does not compile: {exc}") from None


def gguf_path(store: ModelStore, reference: str) -> Path:
    """The GGUF file to run: the embedded one (checksum-verified) or the user's."""
    folder, gguf = store.llm_source(reference)
    if gguf is None:
        raise ConfigError(
            f"llm.backend 'llama.cpp' runs .gguf files, and {reference} is a transformers "
            "folder. Fix: set llm.model to a .gguf file or llm.backend to 'transformers'"
        )
    return folder / gguf


def physical_cores() -> int:
    """Cores this process may run on, counting SMT siblings once: llama.cpp's matrix
    kernels gain nothing from a core's second hardware thread."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


_native_log = None  # the ctypes callback; kept alive as long as llama.cpp may call it


def _quiet_native_log(llama_cpp) -> None:
    """Send llama.cpp's own log to Python's logging (seen with -v only). The binding's
    default callback prints level-0 messages such as "using full-size SWA cache" to
    stderr even with verbose=False, a stray line under the app's one-line messages."""
    global _native_log
    if _native_log is not None:
        return
    import ctypes
    import logging

    log = logging.getLogger("llama.cpp")

    @llama_cpp.llama_log_callback
    def to_logging(level, text, user_data):
        log.debug("%s", text.decode("utf-8", errors="replace").rstrip())

    _native_log = to_logging
    llama_cpp.llama_log_set(_native_log, ctypes.c_void_p(0))
