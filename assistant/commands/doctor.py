"""Checks what the assistant needs and says what to fix; exit 1 if something essential fails."""

from __future__ import annotations

import platform
import time

from assistant.derived_cache import Check
from assistant.display import has_display
from assistant.errors import ModelError
from assistant.model_store import CONVERTED_LLM, ModelStore, made_from
from assistant.tts.vits_split import check_split


def run(args, config) -> int:
    problems = 0
    print(f"python {platform.python_version()} on {platform.platform()}")
    problems += audio_report()
    problems += model_report(ModelStore())
    problems += llm_report(config)
    echo_report(config)
    interpreter_report(config)
    gpu_report(config)
    print(f"display: {'yes' if has_display() else 'none (use the headless commands)'}")
    print("all good" if not problems else f"{problems} problem(s) found: see 'fix:' above")
    return 1 if problems else 0


def audio_report() -> int:
    try:
        import sounddevice as sd

        devices = sd.query_devices()
    except (OSError, ImportError) as exc:
        print(f"audio: PortAudio unavailable ({exc})\n  fix: install libportaudio2")
        return 1
    inputs = [d for d in devices if d["max_input_channels"] > 0]
    outputs = [d for d in devices if d["max_output_channels"] > 0]
    default_in, default_out = sd.default.device
    print(f"audio devices ({len(devices)}):")
    for d in devices:
        marks = ("in " if d["max_input_channels"] else "") + (
            "out" if d["max_output_channels"] else ""
        )
        default = " (default in)" if d["index"] == default_in else ""
        default += " (default out)" if d["index"] == default_out else ""
        print(f"  [{d['index']}] {d['name']} {marks} {int(d['default_samplerate'])} Hz{default}")
    problems = 0
    if not inputs:
        print("  no microphone found\n  fix: plug one in, or use 'chat --input FILE'")
        problems += 1
    if not outputs:
        print("  no speaker found\n  fix: plug one in, or use 'chat --output FILE'")
        problems += 1
    return problems


def model_report(store: ModelStore) -> int:
    """Every packaged file and every prepared copy, each against its full sha256."""
    problems = 0
    print("models:")
    for entry in store.catalog.values():
        start = time.perf_counter()
        try:
            files = store.source_files(entry, force=True)
        except ModelError as exc:
            problems += 1
            message = str(exc).replace(". Fix: ", "\n    fix: ")
            print(f"  {entry.kind}: {entry.name}: FAILED\n    {message}")
            continue
        size = sum(p.stat().st_size for p in files.values())
        took = time.perf_counter() - start
        print(
            f"  {entry.kind}: {entry.name}: ok (sha256 of {len(files)} packaged file(s), "
            f"{size / 1e6:.0f} MB, {took * 1000:.0f} ms)"
        )
        for label, check in prepared_checks(store, entry, files):
            if check.ok:
                print(f"    {label}: ok ({check.describe()})")
            elif check.missing:
                print(f"    {label}: not prepared yet (made on first use, or by prepare-models)")
            else:
                problems += 1
                print(
                    f"    {label}: FAILED: {check.problem}\n"
                    "    fix: run 'voice-assistant prepare-models' (rebuilds it from the packages)"
                )
    return problems


def prepared_checks(store: ModelStore, entry, files) -> list[tuple[str, Check]]:
    """(what, full check) of each cache folder made from ``entry``."""
    if entry.assemble:  # Whisper, the translation LLM: joined from their part packages
        return [("assembled copy", store.derived.check(entry.id, made_from(entry), full=True))]
    if entry.kind == "llm":
        name = entry.id + CONVERTED_LLM
        return [("safetensors conversion", store.derived.check(name, made_from(entry), full=True))]
    voice = next(p for rel, p in files.items() if rel.endswith(".onnx"))
    return [("voice split at its vocoder", check_split(voice, store.derived))]


def llm_report(config) -> int:
    """Which backend answers and, on the CPU, which path this processor takes."""
    from assistant.llm.factory import backend_name

    name = backend_name(config.llm)
    if name == "openai":
        from assistant.errors import UserFacingError
        from assistant.llm.openai_chat import OpenAIChat

        try:  # lists the server's models: the URL, the key and the name are all checked
            chat = OpenAIChat(config.llm, ModelStore())
        except UserFacingError as exc:
            print(f"llm: {exc}\n  fix: start the server, or correct --llm-url / --llm-name")
            return 1
        print(f"llm: {chat.describe()}: reachable")
        chat.close()
        return 0
    if name == "llama.cpp":
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            print("llm: llama.cpp backend chosen but llama-cpp-python is not installed")
            print("  fix: pip install llama-cpp-python==0.3.36 (builds llama.cpp, minutes)")
            return 1
        why = "" if config.llm.backend == "llama.cpp" else " (no native bfloat16 on this CPU)"
        print(f"llm: llama.cpp on the CPU{why}")
        return 0
    from assistant.llm.int8_weights import int8_supported

    if int8_supported():
        path = "int8 weights with bfloat16 activations (this CPU has native bfloat16)"
    else:
        path = "float32 weights (no native bfloat16 on this CPU)"
    print(f"llm: transformers; on the CPU: {path}")
    return 0


def echo_report(config) -> None:
    """Whether it can take its own voice out of the microphone (talking on loudspeakers)."""
    from assistant.echo.backends import create_cancellers, describe

    setting = config.audio.echo
    if setting == "off":
        print('echo: handling off (audio.echo = "off"): on loudspeakers it will hear itself')
        return
    if setting == "half-duplex":
        print("echo: half duplex (audio.echo): it does not listen while it speaks")
        return
    canceller, words, why = create_cancellers(config.audio.echo_canceller)
    if canceller is not None:
        print(f"echo: cancellation available ({describe(canceller, words)}): loudspeakers work")
        for made in (canceller, words):
            if made is not None:
                made.close()
        return
    print(f"echo: half duplex ({why}): it does not listen while it speaks")
    print("  fix: install libspeexdsp1 or pip install livekit==1.2.1, or use headphones")


def interpreter_report(config) -> None:
    """What the interpreter has for its translation, its voices and its inputs (nothing
    here stops the assistant, so nothing counts as a problem)."""
    from assistant.audio.monitor import default_monitor
    from assistant.errors import UserFacingError
    from assistant.interpret.languages import language_name
    from assistant.tts.espeak_engine import espeak_voice

    interpret = config.interpret
    target = language_name(interpret.target)
    mt = f"; MT model {interpret.mt_model}" if interpret.mt_model else ""
    server = f"; server {interpret.llm_url}" if interpret.llm_url else ""
    print(
        f"interpreter: into {target} with engine {interpret.engine} (Whisper into English, "
        f"the translation LLM{server}{mt})"
    )
    try:
        voice = espeak_voice("fr")
        print(f"  voices: Piper for English, espeak-ng for other languages ({voice.name}, ...)")
    except UserFacingError as exc:
        print(f"  voices: Piper for English only: {exc}")
    try:
        print(f"  system audio input: {default_monitor()}")
    except UserFacingError as exc:
        print(f"  system audio input: unavailable: {exc}")
    import models

    print("models you can add (fetch them yourself, then set the setting named):")
    for entry in models.addable():
        size = entry["size_bytes"] / 1e9
        print(f"  {entry['name']} ({size:.1f} GB, {entry['license']}): {entry['source']}")
        print(f"    {entry['setting']}: {entry['why']}")


def gpu_report(config) -> None:
    from assistant.compute import cuda_device_count

    count = cuda_device_count()
    try:
        import torch

        torch_cuda = torch.cuda.is_available()
        torch_info = f"torch {torch.__version__}, CUDA {'yes' if torch_cuda else 'no'}"
    except ImportError:
        torch_info = "torch not installed"
    print(f"gpu: CTranslate2 sees {count} CUDA device(s); {torch_info}")
    if not count:
        print("  speech recognition runs on the CPU (int8); that is expected without a GPU")
        return
    from assistant.asr import WhisperRecognizer

    try:  # CTranslate2 needs its own CUDA libraries; only a real encoder pass tells
        recognizer = WhisperRecognizer(ModelStore().whisper_dir(config.asr.model), config.asr)
    except ModelError as exc:
        print(f"  speech recognition cannot start: {exc}")
        return
    if recognizer.cuda_problem:
        print(f"  speech recognition falls back to the CPU: {recognizer.cuda_problem}")
    else:
        print(f"  speech recognition runs on the {recognizer.device.upper()}")
