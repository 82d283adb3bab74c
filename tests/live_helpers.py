"""Helpers for tests/test_live_audio.py: waiting on pipeline events, on a subprocess's output and
on the speaker recording, and measuring sound on the recording's monotonic time line.

Every wait here blocks on a condition (an event arriving, a line printed, samples recorded) with
a timeout only as an upper bound; nothing sleeps a fixed time (the ready file is polled every
50 ms until it appears).
"""

from __future__ import annotations

import codecs
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from audio_env import Recorder, Recording

from assistant.audio.sinks import SpeakerSink

E = TypeVar("E")

FRAME_MS = 10
LOUD = 0.01  # sample amplitude counted as sound; the null sink's silence is exactly 0.0


class EventLog:
    """An Assistant event handler that keeps every event (with its arrival time) and lets a
    test wait for one."""

    def __init__(self) -> None:
        self.events: list = []
        self.arrived: list[float] = []
        self._cond = threading.Condition()

    def __call__(self, event) -> None:
        with self._cond:
            self.events.append(event)
            self.arrived.append(time.monotonic())
            self._cond.notify_all()

    def of(self, kind: type[E], turn: int | None = None) -> list[E]:
        with self._cond:
            return [
                e for e in self.events if isinstance(e, kind) and (turn is None or e.turn == turn)
            ]

    def wait_for(
        self,
        kind: type[E],
        predicate: Callable[[E], bool] = lambda e: True,
        timeout: float = 60.0,
        after: int = 0,
    ) -> E:
        """The first event of ``kind`` (from index ``after`` on) that satisfies ``predicate``.

        Fails with the list of events seen so far if none arrives within ``timeout``.
        """
        found: list[E] = []

        def match() -> bool:
            for e in self.events[after:]:
                if isinstance(e, kind) and predicate(e):
                    found.append(e)
                    return True
            return False

        with self._cond:
            if not self._cond.wait_for(match, timeout):
                raise AssertionError(
                    f"no {kind.__name__} within {timeout} s; events so far:\n{self.describe()}"
                )
        return found[0]

    def mark(self) -> int:
        """An index to pass as ``after`` so that only later events count."""
        with self._cond:
            return len(self.events)

    def describe(self) -> str:
        """One line per event (ReplyToken events left out: ReplyFinished has their text)."""
        with self._cond:
            pairs = zip(self.arrived, self.events, strict=True)
            return "\n".join(
                f"  {t:.3f} {e!r}"[:300] for t, e in pairs if type(e).__name__ != "ReplyToken"
            )


class LineReader:
    """Collects a text pipe's lines in a thread and lets a test wait for a line."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        for line in pipe:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str | None:
        """The first line that satisfies ``predicate``; None if the pipe closed or the time ran
        out without one."""
        found: list[str] = []

        def match() -> bool:
            found[:] = [line for line in self.lines if predicate(line)][:1]
            return bool(found) or self.closed

        with self._cond:
            self._cond.wait_for(match, timeout)
        return found[0] if found else None

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)


REPO = Path(__file__).resolve().parent.parent


class Stream:
    """A text pipe's output as it arrives, partial lines included (a reply is printed a
    token at a time), with a wait for a pattern in it."""

    def __init__(self, pipe) -> None:
        self._text = ""
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        while chunk := os.read(pipe.fileno(), 4096):
            with self._cond:
                self._text += decode(chunk)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: re.search(pattern, self._text) or self._closed, timeout)
            return bool(re.search(pattern, self._text))

    def text(self) -> str:
        with self._cond:
            return self._text

    def join(self) -> None:
        self._thread.join(10)


def start_listen(pulse, ready: Path, *args: str) -> subprocess.Popen:
    """``voice-assistant listen`` on the test PulseAudio server, creating ``ready`` once
    it listens; its stdout and stderr are text pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", "assistant", "listen", *args, "--ready-file", str(ready)],
        cwd=REPO,
        env={**os.environ, **pulse.env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_file(path, proc: subprocess.Popen, timeout: float) -> bool:
    """Polls for ``path`` until it exists, ``proc`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            return path.exists()
        time.sleep(0.05)  # polling interval of a condition, not a fixed wait
    return True


def sound_seconds(rec: Recording, start: float, end: float, threshold: float = LOUD) -> float:
    """How long (in 10 ms frames) the recording was loud between ``start`` and ``end``."""
    i0, i1 = rec.index_of(start), min(rec.index_of(end), rec.samples.size)
    n = rec.rate * FRAME_MS // 1000
    x = np.abs(rec.samples[i0:i1])
    if x.size < n:
        return 0.0
    frames = x[: x.size // n * n].reshape(-1, n).max(axis=1)
    return float(np.count_nonzero(frames > threshold)) * FRAME_MS / 1000


def last_sound(rec: Recording, start: float, end: float, threshold: float = LOUD) -> float | None:
    """Monotonic time of the last sample above ``threshold`` in [start, end)."""
    i0, i1 = rec.index_of(start), min(rec.index_of(end), rec.samples.size)
    loud = np.flatnonzero(np.abs(rec.samples[i0:i1]) > threshold)
    return rec.time_of(i0 + int(loud[-1])) if loud.size else None


def record_until_quiet(
    recorder: Recorder,
    since: float,
    quiet_s: float,
    timeout: float,
    ready: Callable[[], bool] = lambda: True,
    threshold: float = LOUD,
) -> Recording:
    """Waits until ``ready()`` holds and the recording has then been quiet for ``quiet_s``
    (no sample above ``threshold`` after the last loud one since ``since``)."""
    deadline = time.monotonic() + timeout
    check_at = since + quiet_s
    while True:
        rec = recorder.wait_until(check_at, timeout=max(0.1, deadline - time.monotonic()))
        last = last_sound(rec, since, check_at, threshold)
        quiet_from = since if last is None else last
        if ready() and check_at - quiet_from >= quiet_s:
            return rec
        if time.monotonic() > deadline:
            raise TimeoutError(f"the speaker did not fall quiet for {quiet_s} s within {timeout} s")
        check_at = max(quiet_from + quiet_s, check_at + 0.1)


def sound_spans(
    rec: Recording, start: float, end: float, threshold: float = LOUD, bridge_s: float = 0.3
) -> list[tuple[float, float]]:
    """The stretches of sound in [start, end) as (from, to) monotonic times, bridging pauses
    shorter than ``bridge_s`` (the gaps between words)."""
    i0, i1 = rec.index_of(start), min(rec.index_of(end), rec.samples.size)
    n = rec.rate * FRAME_MS // 1000
    x = np.abs(rec.samples[i0:i1])
    if x.size < n:
        return []
    loud = np.flatnonzero(x[: x.size // n * n].reshape(-1, n).max(axis=1) > threshold)
    spans: list[tuple[float, float]] = []
    for k in loud:
        t = rec.time_of(i0 + int(k) * n)
        if spans and t - spans[-1][1] <= bridge_s:
            spans[-1] = (spans[-1][0], t + FRAME_MS / 1000)
        else:
            spans.append((t, t + FRAME_MS / 1000))
    return spans


class TappedSpeaker(SpeakerSink):
    """The real speaker sink, noting when each chunk was queued and when the queue was cleared
    (both through the public AudioSink methods), so a test knows how much of a reply was still
    unplayed when a barge-in cleared it."""

    def __init__(self, device: str | int | None = None) -> None:
        super().__init__(device)
        self.queued: list[tuple[float, int]] = []  # (monotonic time, samples) per play()
        self.cleared: list[float] = []  # monotonic time of each clear()
        self._tap = threading.Condition()  # orders the notes exactly as the calls took effect

    def play(self, samples, on_start=None) -> None:
        with self._tap:
            super().play(samples, on_start)
            self.queued.append((time.monotonic(), int(np.asarray(samples).size)))
            self._tap.notify_all()

    def clear(self) -> None:
        with self._tap:
            super().clear()
            self.cleared.append(time.monotonic())

    def queued_seconds(self, start: float, end: float) -> float:
        """Seconds of audio queued between the monotonic times ``start`` and ``end``."""
        with self._tap:
            n = sum(size for t, size in self.queued if start <= t < end)
        return n / self.sample_rate if self.sample_rate else 0.0

    def backlog(self, started: float, now: float) -> float:
        """Seconds queued since ``started`` (when the first sample played) that cannot have
        played by ``now``; a lower bound, as an underrun only delays playback."""
        return self.queued_seconds(started - 60, now) - (now - started)

    def wait_for_backlog(self, started: float, seconds: float, timeout: float) -> float:
        """Waits until ``seconds`` of audio are queued but unplayed; returns the backlog. Only a
        play() can raise it, so it is checked at each one."""
        with self._tap:
            ok = self._tap.wait_for(
                lambda: self.backlog(started, time.monotonic()) >= seconds, timeout
            )
        backlog = self.backlog(started, time.monotonic())
        if not ok:
            raise AssertionError(f"the speaker never had {seconds} s queued (last: {backlog:.2f})")
        return backlog

    def first_clear_after(self, t: float) -> float | None:
        with self._tap:
            return next((c for c in self.cleared if c >= t), None)
