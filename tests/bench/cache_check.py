"""What checking the prepared models costs on every start, and in full.

For each cache folder made from the default models (assistant/derived_cache.py): the
quick check (size and sampled blocks, on every start) and the full sha256 (prepare-models,
doctor, and a start once a week), medians of five runs with the files in the page cache,
which is where they are on a start that follows another. Also the start's check of the
packaged source files (a stamp and a fingerprint each). Run alone with
``python tests/bench/cache_check.py``; ``make bench`` records it as ``cache_checks_ms``.
"""

from __future__ import annotations

import json
import statistics
import time

from assistant.model_store import CONVERTED_LLM, ModelStore, made_from
from assistant.tts.vits_split import cache_folder

_RUNS = 5


def measure() -> dict:
    store = ModelStore()
    store.whisper_dir()  # prepared and stamped before anything is timed
    voice = store.piper_voice()[0]
    folders = {
        "whisper": ("whisper-base", made_from(store.catalog["whisper-base"])),
        "llm": (
            "smollm2-135m-instruct" + CONVERTED_LLM,
            made_from(store.catalog["smollm2-135m-instruct"]),
        ),
        "voice": (cache_folder(voice, store.derived).name, None),
    }
    result: dict = {}
    for label, (name, origin) in folders.items():
        for full in (False, True):
            times, check = [], None
            for _ in range(_RUNS):
                check = store.derived.check(name, origin, full=full)
                times.append(check.seconds * 1000)
            assert check is not None and check.ok, f"{label}: {check.problem}"
            key = f"{label}_{'full' if full else 'quick'}"
            result[key] = round(statistics.median(times), 2)
        result[f"{label}_mb"] = round(check.bytes / 1e6)
    times = []
    for _ in range(_RUNS):
        start = time.perf_counter()
        for entry in store.catalog.values():
            store.source_files(entry)
        times.append((time.perf_counter() - start) * 1000)
    result["packaged_files_quick"] = round(statistics.median(times), 2)
    quick = [v for k, v in result.items() if k.endswith("_quick")]
    result["start_total_quick"] = round(sum(quick), 2)
    return result


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))
