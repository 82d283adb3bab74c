"""Which processor each engine runs on: CUDA when present, else the CPU."""

from __future__ import annotations

from dataclasses import dataclass

from assistant.errors import ConfigError


@dataclass(frozen=True)
class ComputeChoice:
    device: str  # "cuda" or "cpu"
    compute_type: str  # CTranslate2 compute type, or a torch dtype name


def cuda_device_count() -> int:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count()
    except Exception:  # a broken CUDA install must not stop the CPU path
        return 0


def whisper_compute(device: str, compute_type: str) -> ComputeChoice:
    if device == "auto":
        device = "cuda" if cuda_device_count() > 0 else "cpu"
    elif device == "cuda" and cuda_device_count() == 0:
        raise ConfigError("asr.device is 'cuda' but no CUDA GPU is visible; use 'auto' or 'cpu'")
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return ComputeChoice(device, compute_type)


def torch_compute(device: str) -> ComputeChoice:
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if has_cuda else "cpu"
    elif device == "cuda" and not has_cuda:
        raise ConfigError("llm.device is 'cuda' but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    return ComputeChoice(device, "float16" if device == "cuda" else "float32")


def one_blas_thread() -> None:
    """Run numpy's OpenBLAS on the calling core only.

    OpenBLAS keeps a worker per core that spins for a while after every call, waiting for
    more work. Whisper's mel features are such a call right before each encoder pass, so
    on 2 cores its spinning worker took the core the encoder needed (found by per-thread
    CPU time during ``encode``). The arrays numpy multiplies here are far too small to
    gain from a second thread.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
