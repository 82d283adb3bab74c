"""Real-audio test harness: a private PulseAudio server with two null sinks.

    app_out   the default sink: whatever the app plays; ``Recorder`` captures app_out.monitor
    mic_feed  ``play_into_mic`` plays here; mic_feed.monitor is the default source (the app's mic)

tests/run_suite.sh starts the server before pytest and exports its environment; under plain
``pytest``, tests/conftest.py calls ``start_server`` for the same server (tests/pulse/server.pa).
ALSA programs (PortAudio, sounddevice) reach it as "default" through tests/pulse/asound.conf.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16000
PULSE_DIR = Path(__file__).parent / "pulse"
SINKS = ("app_out", "mic_feed")


def pulse_env(runtime_dir: str | Path) -> dict[str, str]:
    """The environment that points PulseAudio and ALSA clients at the server in ``runtime_dir``.

    Kept in step with tests/run_suite.sh. Cookie and state live in ``runtime_dir``, not $HOME.
    """
    rt = str(runtime_dir)
    return {
        "XDG_RUNTIME_DIR": rt,
        "PULSE_RUNTIME_PATH": f"{rt}/pulse",
        "PULSE_SERVER": f"unix:{rt}/pulse/native",
        "PULSE_STATE_PATH": f"{rt}/pulse-state",
        "PULSE_COOKIE": f"{rt}/pulse-cookie",
        "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{PULSE_DIR / 'asound.conf'}",
    }


def pactl(*args: str) -> str:
    return subprocess.run(
        ["pactl", *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout


def server_ready() -> bool:
    try:
        pactl("info")
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def start_server(runtime_dir: str | Path, timeout: float = 10.0) -> subprocess.Popen:
    """Starts the test server in ``runtime_dir``, exports its environment into os.environ and
    returns once ``pactl info`` answers. The caller stops it with ``stop_server``."""
    os.environ.update(pulse_env(runtime_dir))
    log = Path(runtime_dir) / "pulse.log"
    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "--system=no", "--use-pid-file=no",
             "--exit-idle-time=-1", "--disallow-exit", "-n", "-F", str(PULSE_DIR / "server.pa"),
             "--log-target=stderr"],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while not server_ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"PulseAudio did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def check_server() -> None:
    """Raises AssertionError unless the test server answers with both sinks and the defaults."""
    assert server_ready(), f"no PulseAudio server at {os.environ.get('PULSE_SERVER')}"
    sinks = [line.split("\t")[1] for line in pactl("list", "short", "sinks").splitlines()]
    assert set(SINKS) <= set(sinks), f"null sinks missing: {sinks}"
    info = pactl("info")
    assert "Default Sink: app_out" in info and "Default Source: mic_feed.monitor" in info, info


def play_into_mic(wav_path: str | Path) -> None:
    """Plays a WAV into mic_feed (the app's microphone) and returns once it has been played."""
    proc = start_play_into_mic(wav_path)
    _, err = proc.communicate(timeout=120)
    if proc.returncode:
        raise RuntimeError(f"paplay failed ({proc.returncode}): {err.decode(errors='replace')}")


def start_play_into_mic(wav_path: str | Path) -> subprocess.Popen:
    """Starts playing a WAV into mic_feed; the returned process ends when it has been played."""
    return subprocess.Popen(
        ["paplay", "--device=mic_feed", str(wav_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@dataclass
class Recording:
    samples: np.ndarray  # float32 mono at ``rate``
    rate: int
    t0: float  # monotonic time of samples[0] (tight upper bound: sound is never seen early)
    t_first_byte: float  # monotonic time the first bytes arrived

    def time_of(self, index: int) -> float:
        return self.t0 + index / self.rate

    def index_of(self, t: float) -> int:
        return max(0, round((t - self.t0) * self.rate))

    def onset(self, threshold: float = 0.01, since: float | None = None) -> float | None:
        """Monotonic time of the first sample louder than ``threshold`` (at/after ``since``)."""
        start = 0 if since is None else self.index_of(since)
        loud = np.flatnonzero(np.abs(self.samples[start:]) > threshold)
        return self.time_of(start + int(loud[0])) if loud.size else None


class Recorder:
    """Records a PulseAudio source (default: app_out.monitor, i.e. the app's speaker) with parec.

    ``start()`` (or ``with``) returns once the first bytes have arrived. Samples are put on the
    monotonic time line as in vv-meter: a sample cannot arrive before it was captured, so
    t0 = min(arrival time - samples so far / rate) over all reads.
    """

    def __init__(self, device: str = "app_out.monitor", rate: int = RATE, latency_ms: int = 10):
        self.device, self.rate, self.latency_ms = device, rate, latency_ms
        self._buf = bytearray()
        self._t0 = float("inf")
        self._t_first = 0.0
        self._cond = threading.Condition()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> Recorder:
        self._proc = subprocess.Popen(
            ["parec", f"--device={self.device}", "--format=float32le", f"--rate={self.rate}",
             "--channels=1", "--raw", f"--latency-msec={self.latency_ms}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._wait(lambda: self._buf or self._proc.poll() is not None, timeout):
            self.stop()
            raise TimeoutError(f"no data from parec {self.device} within {timeout} s")
        if not self._buf:
            err = self._proc.stderr.read().decode(errors="replace")
            raise RuntimeError(f"parec {self.device} exited {self._proc.returncode}: {err}")
        return self

    def _read(self) -> None:
        fd = self._proc.stdout.fileno()
        while chunk := os.read(fd, 8192):
            t = time.monotonic()
            with self._cond:
                if not self._buf:
                    self._t_first = t
                self._buf += chunk
                self._t0 = min(self._t0, t - (len(self._buf) // 4) / self.rate)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait(self, predicate, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def recording(self) -> Recording:
        """What has arrived so far."""
        with self._cond:
            n = len(self._buf) // 4
            samples = np.frombuffer(bytes(self._buf[: 4 * n]), dtype="<f4").copy()
            return Recording(samples, self.rate, self._t0, self._t_first)

    def _covered_until(self) -> float:
        return self._t0 + (len(self._buf) // 4) / self.rate

    def wait_until(self, t: float, timeout: float = 10.0) -> Recording:
        """Waits until the samples up to monotonic time ``t`` have arrived."""
        if not self._wait(lambda: self._covered_until() >= t, timeout):
            raise TimeoutError(f"recording of {self.device} did not reach t={t:.3f}")
        return self.recording()

    def wait_for_sound(
        self, threshold: float = 0.01, since: float | None = None, timeout: float = 10.0
    ) -> float:
        """Waits for a sample louder than ``threshold`` (at/after monotonic ``since``) and returns
        its monotonic time."""
        found: list[float] = []
        scanned = 0

        def loud() -> bool:
            nonlocal scanned
            start = (
                scanned if since is None else max(scanned, round((since - self._t0) * self.rate))
            )
            n = len(self._buf) // 4
            x = np.frombuffer(bytes(self._buf[4 * start : 4 * n]), dtype="<f4")
            hits = np.flatnonzero(np.abs(x) > threshold)
            scanned = max(scanned, n)
            if hits.size:
                found.append(self._t0 + (start + int(hits[0])) / self.rate)
            return bool(found)

        if not self._wait(loud, timeout):
            raise TimeoutError(f"no sound above {threshold} on {self.device} within {timeout} s")
        return found[0]

    def stop(self) -> Recording:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(5)
        if self._thread:
            self._thread.join(5)
        return self.recording()

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class PulseAudio:
    """What the ``pulse`` fixture hands to tests."""

    Recorder = Recorder
    play_into_mic = staticmethod(play_into_mic)
    start_play_into_mic = staticmethod(start_play_into_mic)
    pactl = staticmethod(pactl)

    @property
    def env(self) -> dict[str, str]:
        """The variables an app subprocess needs to use the test server."""
        return {k: os.environ[k] for k in pulse_env("") if k in os.environ}


def speak(
    text: str,
    path: str | Path,
    voice: str = "en-us",
    engine: str = "espeak-ng",
    *,
    espeak_options: tuple[str, ...] = ("-s", "150"),
) -> Path:
    """Synthesises ``text`` into a 16 kHz mono 16-bit WAV at ``path`` and returns the path.

    engine "espeak-ng" takes an espeak voice ("en-us", "en-gb", ...); "flite" takes a flite
    voice ("kal", "slt", "awb", "rms"), with "en-us" meaning flite's default voice.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "tts.wav"
        if engine == "espeak-ng":
            # by default a little slower than espeak's 175 wpm: clearer for the recogniser
            cmd = ["espeak-ng", "-v", voice, *espeak_options, "-w", str(raw), text]
        elif engine == "flite":
            cmd = ["flite", "-t", text, "-o", str(raw)]
            if voice != "en-us":
                cmd += ["-voice", voice]
        else:
            raise ValueError(f"unknown TTS engine {engine!r}")
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        subprocess.run(
            ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV as float32 mono samples and its rate."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2, f"{path}: not 16-bit PCM"
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        x = x.reshape(-1, w.getnchannels()).mean(axis=1)
        return (x / 32768.0).astype(np.float32), w.getframerate()


@contextlib.contextmanager
def room(latency_ms: int, volume_percent: int):
    """The speaker heard by the microphone: a loopback with this delay and level."""
    module = pactl(
        "load-module",
        "module-loopback",
        "source=app_out.monitor",
        "sink=mic_feed",
        f"latency_msec={latency_ms}",
        "source_dont_move=true",
        "sink_dont_move=true",
        "adjust_time=0",  # a fixed delay, as one sound card's speaker and microphone have
    ).strip()
    try:
        for line in pactl("list", "short", "sink-inputs").splitlines():
            index, owner = line.split("\t")[:2]
            if owner == module:
                pactl("set-sink-input-volume", index, f"{volume_percent}%")
        yield
    finally:
        pactl("unload-module", module)
