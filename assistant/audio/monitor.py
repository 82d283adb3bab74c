"""What this computer plays (a call, a video) as the interpreter's input.

On Linux every sink of PulseAudio, and of PipeWire through pipewire-pulse, has a monitor
source carrying what it plays. It is recorded with ``parec`` rather than through PortAudio
and the ALSA pulse plugin: parec names the exact monitor (``--device=<sink>.monitor``),
which PortAudio cannot (its "pulse" device is whatever the server's default source is),
asks the server for a small latency, and needs no ALSA configuration. The server resamples
to the pipeline rate. The recording runs in a reader thread and is cut into blocks here.

Windows and macOS have no monitor sources; there the loopback device is picked by name
like a microphone (see ``UNSUPPORTED``).
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

from assistant.audio.blocks import AudioBlock
from assistant.audio.sources import AudioSource, MicrophoneSource
from assistant.errors import AudioDeviceError

LATENCY_MS = 20  # asked of the server: its buffer before parec is handed data
_START_TIMEOUT_S = 0.5  # for parec to fail fast (a missing source) or deliver
_FIX = (
    "Fix: run PulseAudio or PipeWire with pipewire-pulse and install pulseaudio-utils "
    "(pactl, parec), or set interpret.input to a loopback input device's name"
)
UNSUPPORTED = {
    "win32": "Windows has no monitor source: set interpret.input to the loopback device "
    "of your speakers by name (WASAPI loopback, e.g. 'Speakers (Realtek) [Loopback]', or "
    "enable 'Stereo Mix' in the sound settings)",
    "darwin": "macOS cannot record what it plays by itself: install a virtual device such "
    "as BlackHole, send the output there (a Multi-Output Device keeps the speakers), and set "
    "interpret.input to its name, e.g. 'BlackHole 2ch'",
}


def input_source(spec: str, sample_rate: int = 16000, block_ms: int = 32) -> AudioSource:
    """The source ``interpret.input`` names: "mic" (the default input), "monitor" (what the
    default output plays), or an input device's name or index."""
    spec = spec.strip()
    if spec == "mic":
        return MicrophoneSource(None, sample_rate, block_ms)
    if spec == "monitor":
        return MonitorSource(sample_rate=sample_rate, block_ms=block_ms)
    device: str | int = int(spec) if spec.isdigit() else spec
    return MicrophoneSource(device, sample_rate, block_ms)


def default_monitor() -> str:
    """The monitor source of the sound server's default sink, e.g. "alsa_output....monitor"."""
    if sys.platform in UNSUPPORTED:
        raise AudioDeviceError(UNSUPPORTED[sys.platform])
    if shutil.which("pactl") is None:
        raise AudioDeviceError(f"cannot find what this computer plays: pactl not found. {_FIX}")
    env = {**os.environ, "LC_ALL": "C"}  # `pactl info` labels are translated otherwise
    try:
        done = subprocess.run(
            ["pactl", "get-default-sink"], capture_output=True, text=True, timeout=5, env=env
        )
        sink = done.stdout.strip() if done.returncode == 0 else ""
        if not sink and "Connection" not in done.stderr:  # pactl before 15: no such command
            info = subprocess.run(
                ["pactl", "info"], capture_output=True, text=True, timeout=5, env=env
            )
            done = info
            prefix = "Default Sink:"
            lines = [ln for ln in info.stdout.splitlines() if ln.startswith(prefix)]
            sink = lines[0][len(prefix) :].strip() if lines else ""
    except (OSError, subprocess.SubprocessError) as exc:
        raise AudioDeviceError(
            f"cannot ask the sound server for its output: {exc}. {_FIX}"
        ) from None
    if not sink or sink == "@DEFAULT_SINK@":
        reason = _last_line(done.stderr) or "it has no default output"
        raise AudioDeviceError(
            f"no PulseAudio/PipeWire sound server to record from ({reason}). {_FIX}"
        )
    return f"{sink}.monitor"


class MonitorSource:
    """A PulseAudio/PipeWire source, by default the monitor of the default sink, recorded by
    a ``parec`` process. Silence comes as zeros, so no audio for a while is not a lost stream
    (unlike a microphone); parec exiting is, and ``read`` raises AudioDeviceError for it."""

    # It records what this app plays too, exactly and without a room: a mode that speaks
    # must not listen while it does (see assistant/echo/setup.py).
    hears_own_output = True

    def __init__(
        self, device: str | None = None, sample_rate: int = 16000, block_ms: int = 32
    ) -> None:
        self.sample_rate = sample_rate
        self.device = device  # None: the default sink's monitor, looked up at each start
        self.source_name = ""  # the source recorded by the last start
        self._block = max(1, sample_rate * block_ms // 1000)
        self._queue: queue.Queue[AudioBlock] = queue.Queue()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._ended = threading.Event()  # the reader saw parec's output end
        self._started = threading.Event()  # the first bytes arrived
        self._settled = threading.Event()  # the first bytes arrived or parec ended
        self._stderr = b""

    def start(self) -> None:
        """Opens the recording; can be called again after ``close`` (the runner reconnects)."""
        self.close()
        name = self.device or default_monitor()
        if shutil.which("parec") is None:
            raise AudioDeviceError(f"cannot record {name}: parec not found. {_FIX}")
        self._queue = queue.Queue()
        self._ended.clear()
        self._started.clear()
        self._settled.clear()
        try:
            self._proc = subprocess.Popen(
                ["parec", f"--device={name}", "--format=float32le", f"--rate={self.sample_rate}",
                 "--channels=1", "--raw", f"--latency-msec={LATENCY_MS}",
                 "--client-name=voice-assistant", "--stream-name=interpreter input"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                bufsize=0,
            )  # fmt: skip
        except OSError as exc:
            raise AudioDeviceError(f"cannot start parec for {name}: {exc}. {_FIX}") from None
        self._thread = threading.Thread(
            target=self._read_loop, args=(self._proc,), name="monitor-reader", daemon=True
        )
        self._thread.start()
        self._settled.wait(_START_TIMEOUT_S)
        if self._ended.is_set() and not self._started.is_set():
            reason = self._failure()
            self.close()
            raise AudioDeviceError(f"cannot record {name}: {reason}")
        self.source_name = name

    def _read_loop(self, proc: subprocess.Popen) -> None:
        fd = proc.stdout.fileno()
        pending = b""
        size = 4 * self._block
        try:
            while chunk := os.read(fd, 8192):
                self._started.set()
                self._settled.set()
                pending += chunk
                arrived = time.monotonic()
                while len(pending) >= size:
                    samples = np.frombuffer(pending[:size], dtype="<f4").copy()
                    pending = pending[size:]
                    # a block's last sample came before the bytes still pending after it
                    stamp = arrived - (len(pending) // 4) / self.sample_rate
                    self._queue.put(AudioBlock(samples, stamp))
        except OSError:  # closed under us by close()
            pass
        finally:
            self._ended.set()
            self._settled.set()

    def read(self, timeout: float) -> AudioBlock | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            if self._proc is not None and self._ended.is_set() and self._queue.empty():
                raise AudioDeviceError(
                    f"the recording of {self.source_name or 'the system output'} stopped "
                    f"({self._failure()}); the sound server restarted or the device went away"
                ) from None
            return None

    def _failure(self) -> str:
        proc = self._proc
        if proc is None:
            return "not started"
        try:
            code = proc.wait(1)
            self._stderr = proc.stderr.read() if proc.stderr else b""
        except (subprocess.TimeoutExpired, OSError, ValueError):
            code = None
        line = _last_line(self._stderr.decode(errors="replace"))
        return line or ("parec was stopped" if code is None else f"parec exited with {code}")

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if self._thread is not None:
                self._thread.join(2)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        self._thread = None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""
