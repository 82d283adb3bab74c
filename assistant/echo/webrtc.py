"""WebRTC's AEC3 through livekit's prebuilt AudioProcessingModule.

AEC3 is the canceller browsers run in every video call: it estimates the echo path and
its delay (hundreds of milliseconds) by itself, and its residual-echo suppressor removes
what the linear filter leaves. Noise suppression and the high-pass filter run with it,
since they are tuned together. livekit's wheel is prebuilt for Linux, macOS and Windows.
"""

from __future__ import annotations

import numpy as np

from assistant.echo.base import EchoCanceller

_RATE = 16000
_FRAME = _RATE // 100  # the module works on 10 ms frames


class WebRtcCanceller(EchoCanceller):
    frame_samples = _FRAME
    name = "WebRTC AEC3"

    def __init__(self) -> None:
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=True, high_pass_filter=True
        )

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        self._apm.process_reverse_stream(self._frame(far))
        frame = self._frame(near)
        self._apm.process_stream(frame)  # in place
        return np.frombuffer(frame.data, dtype=np.int16).astype(np.float32) / 32768.0

    def _frame(self, samples: np.ndarray):
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        return self._rtc.AudioFrame(pcm.tobytes(), _RATE, 1, _FRAME)


def available() -> str | None:
    """None when the module can run here, else why not (for the fallback's message)."""
    try:
        from livekit import rtc

        rtc.AudioProcessingModule(echo_cancellation=True)
    except Exception as exc:  # ImportError, or a native library that does not load
        return f"livekit's WebRTC audio processing is not usable here ({exc})"
    return None
