"""Speex's echo canceller (libspeexdsp, on every Linux desktop through PulseAudio).

An MDF adaptive filter over a 300 ms tail, then Speex's preprocessor as the residual
echo suppressor, told the canceller's state (its own denoiser stays off). It keeps the
user's words when both talk, from the first second of a reply, where AEC3's suppressor
still takes them (docs/performance.md, echo). Loaded through ctypes: no Python wheel
carries it, and the system's copy is the maintained one.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from assistant.echo.base import EchoCanceller

_RATE = 16000
_FRAME = _RATE // 100
_TAIL = _RATE * 300 // 1000  # echo path the filter covers: a room plus device buffers
_ECHO_SET_SAMPLING_RATE = 24  # speex_echo.h
_PREPROCESS_SET_DENOISE = 0  # speex_preprocess.h
_PREPROCESS_SET_ECHO_STATE = 24


def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("speexdsp") or "libspeexdsp.so.1"
    lib = ctypes.CDLL(name)
    lib.speex_echo_state_init.restype = ctypes.c_void_p
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p] + [ctypes.c_void_p] * 3
    lib.speex_preprocess_state_init.restype = ctypes.c_void_p
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_preprocess_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_preprocess_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


class SpeexCanceller(EchoCanceller):
    frame_samples = _FRAME
    name = "Speex"

    def __init__(self) -> None:
        self._lib = lib = _library()
        self._echo = lib.speex_echo_state_init(_FRAME, _TAIL)
        rate = ctypes.c_int(_RATE)
        lib.speex_echo_ctl(self._echo, _ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._suppressor = lib.speex_preprocess_state_init(_FRAME, _RATE)
        lib.speex_preprocess_ctl(
            self._suppressor, _PREPROCESS_SET_ECHO_STATE, ctypes.c_void_p(self._echo)
        )
        off = ctypes.c_int(0)
        lib.speex_preprocess_ctl(self._suppressor, _PREPROCESS_SET_DENOISE, ctypes.byref(off))
        self._out = np.zeros(_FRAME, np.int16)

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        mic = _pcm(near)
        played = _pcm(far)
        self._lib.speex_echo_cancellation(
            self._echo, mic.ctypes.data, played.ctypes.data, self._out.ctypes.data
        )
        self._lib.speex_preprocess_run(self._suppressor, self._out.ctypes.data)
        return self._out.astype(np.float32) / 32768.0

    def close(self) -> None:
        if self._echo:
            self._lib.speex_preprocess_state_destroy(self._suppressor)
            self._lib.speex_echo_state_destroy(self._echo)
            self._echo = self._suppressor = None


def _pcm(samples: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16))


def available() -> str | None:
    """None when libspeexdsp loads here, else why not."""
    try:
        SpeexCanceller().close()
    except OSError as exc:
        return f"libspeexdsp is not installed ({exc})"
    return None
