"""The local chat backends side by side on the default SmolLM2: llama.cpp and transformers.

Each variant runs in its own child process, so that its load time includes its imports and
no library's thread pools or caches help another. Per variant it reports:

  import_s, load_s     importing the backend's libraries; building the backend
  ttft_cold_ms         time to the first text of a first question, nothing cached
  ttft_warm_ms         the same once prefill() has read the system prompt (the app's case)
  words8_warm_ms       time to the first 8 words (about the reply's first phrase), warm
  tok_s_full           decode rate on all threads (text pieces per second after the first)
  tok_s_shared         decode rate after share_cores() (half the threads), as beside TTS
  llama.cpp only, with --threads-check: the same decode rate with every llama.cpp call
  on the backend's private thread against calls alternating between two threads (why it
  has a private thread).

Figures are medians over the questions. On a shared or loaded machine they vary from run
to run, and ggml's threads wait for each other at every operation, so a busy second core
slows the 2-thread figures most: note the load average printed with them.

    .venv/bin/python tests/bench/llm_backends.py [--variants llama.cpp,fast,stock] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

VARIANTS = {  # name: (backend, LlmConfig fields)
    "llama.cpp": ("llama.cpp", {}),
    "llama.cpp-1": ("llama.cpp", {"threads": 1}),
    "fast": ("transformers", {"path": "fast"}),
    "stock": ("transformers", {"path": "stock"}),
    "none": ("transformers", {"quantize": "none"}),
}

QUESTIONS = [
    "What is the weather usually like in spring?",
    "How do I boil an egg?",
    "Why is the sky blue?",
]
LONG_QUESTION = "Describe the city of Paris in a few sentences."


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1) if values else float("nan")


class Timed:
    """Timestamps of a reply's text pieces, from the moment ``reply`` is called."""

    def __init__(self, share_at: int | None = None, chat=None) -> None:
        self.start = time.perf_counter()
        self.times: list[float] = []
        self.text = ""
        self.words8: float | None = None
        self._share_at, self._chat = share_at, chat

    def __call__(self, piece: str) -> None:
        now = time.perf_counter() - self.start
        self.times.append(now)
        self.text += piece
        if self.words8 is None and len(self.text.split()) > 8:
            self.words8 = now  # a ninth word has begun: eight are complete
        if self._share_at is not None and len(self.times) == self._share_at:
            self._chat.share_cores()

    def rate(self, skip: int = 1) -> float:
        """Pieces per second after the first ``skip`` (nearly one token each in English)."""
        times = self.times[skip - 1 :]
        if len(times) < 4:
            return float("nan")
        return (len(times) - 1) / (times[-1] - times[0])


def run_variant(name: str, threads_check: bool) -> dict:
    backend, fields = VARIANTS[name]
    started = time.perf_counter()
    from assistant.config import LlmConfig
    from assistant.model_store import ModelStore

    if backend == "llama.cpp":
        import llama_cpp  # noqa: F401

        from assistant.llm.llama_cpp_chat import LlamaCppChat as Backend
    else:
        import torch  # noqa: F401
        import transformers  # noqa: F401

        from assistant.llm.transformers_chat import TransformersChat as Backend
    imported = time.perf_counter()
    config = LlmConfig(backend=backend, max_new_tokens=48, **fields)
    chat = Backend(config, ModelStore())
    loaded = time.perf_counter()
    result = {
        "variant": name,
        "describe": chat.describe(),
        "import_s": round(imported - started, 2),
        "load_s": round(loaded - imported, 2),
    }
    system_prompt = chat.conversation.system_prompt

    def ask(question: str, *, cold: bool, share_at: int | None = None, direct=False) -> Timed:
        chat.conversation.clear()
        if cold:  # leave a different system prompt in the cache: nothing of this one held
            chat.conversation.system_prompt = "You answer in French."
            chat.reply("Bonjour", lambda _t: None, cancelled=_after(2))
            chat.conversation.clear()
            chat.conversation.system_prompt = system_prompt
        else:
            chat.prefill()
        timed = Timed(share_at, chat)
        timed.start = time.perf_counter()
        if direct:  # llama.cpp's reply on this thread, not the backend's own
            chat._reply(question, timed, lambda: False)
        else:
            chat.reply(question, timed)
        return timed

    ask("Hi", cold=True)  # lazy initialisation (kernels, allocations) out of the figures
    cold = [ask(q, cold=True) for q in QUESTIONS]
    warm = [ask(q, cold=False) for q in QUESTIONS]
    result["ttft_cold_ms"] = _median([1000 * t.times[0] for t in cold])
    result["ttft_warm_ms"] = _median([1000 * t.times[0] for t in warm])
    result["words8_warm_ms"] = _median([1000 * t.words8 for t in warm if t.words8])
    full = [ask(LONG_QUESTION, cold=False) for _ in range(2)]
    shared = [ask(LONG_QUESTION, cold=False, share_at=2) for _ in range(2)]
    result["tok_s_full"] = _median([t.rate() for t in full])
    result["tok_s_shared"] = _median([t.rate(skip=3) for t in shared])
    result["sample_reply"] = warm[0].text.strip()
    if threads_check and backend == "llama.cpp":
        result.update(_calling_threads(chat, ask))
    chat.close()
    return result


def _calling_threads(chat, ask) -> dict:
    """Decode rate through the backend, every llama.cpp call on its private thread, against
    the same replies decoded on this thread as well (bypassing the private one, a second
    libgomp team of threads): what the private thread is there to avoid."""
    private = [ask(LONG_QUESTION, cold=False).rate() for _ in range(2)]
    mixed = [ask(LONG_QUESTION, cold=False, direct=True).rate() for _ in range(2)]
    return {"tok_s_one_thread": _median(private), "tok_s_two_threads": _median(mixed)}


def _after(n: int):
    calls = [0]

    def cancelled() -> bool:
        calls[0] += 1
        return calls[0] > n

    return cancelled


def _machine() -> dict:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {
        "cpus": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "avx2": " avx2" in flags,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


COLUMNS = [
    "import_s",
    "load_s",
    "ttft_cold_ms",
    "ttft_warm_ms",
    "words8_warm_ms",
    "tok_s_full",
    "tok_s_shared",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="llama.cpp,fast,stock")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--threads-check", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(run_variant(args.child, args.threads_check)))
        return 0

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    machine = _machine()
    print(f"machine: {machine}")
    results = []
    for name in args.variants.split(","):
        command = [sys.executable, __file__, "--child", name]
        if args.threads_check:
            command.append("--threads-check")
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if done.returncode or line is None:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(line.removeprefix("RESULT ")))
        print(f"{name}: {results[-1]['describe']}", flush=True)
    machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print("\n" + "variant".ljust(12) + "".join(c.rjust(16) for c in COLUMNS))
    for row in results:
        print(row["variant"].ljust(12) + "".join(str(row[c]).rjust(16) for c in COLUMNS))
    for row in results:
        if "tok_s_one_thread" in row:
            print(
                f"{row['variant']}: decode {row['tok_s_one_thread']} tok/s with every call on "
                f"its private thread, {row['tok_s_two_threads']} when calls alternate between "
                "it and a second thread"
            )
    print(f"load average after: {machine['load_average_after']}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
