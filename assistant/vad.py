"""Voice activity detection and end-of-turn detection.

Silero VAD runs on every 32 ms window with its recurrent state carried across calls
(faster-whisper's own wrapper resets it per call, which suits files, not streams).
The ``Endpointer`` turns those probabilities into utterances: it keeps a pre-roll so the
first syllable survives, needs a minimum of speech before it calls a turn started, and
ends the turn after a configurable silence.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass

import numpy as np

from assistant.config import VadConfig

WINDOW = 512  # samples at 16 kHz: the window Silero VAD v5/v6 is trained on
SAMPLE_RATE = 16000
_CONTEXT = 64
_TAIL_MS = 160  # trailing silence kept in an utterance (at most the speculation delay)


class SileroVad:
    """Streaming Silero VAD (the ONNX model that ships inside faster-whisper)."""

    def __init__(self, model_path: str | None = None) -> None:
        import onnxruntime
        from faster_whisper.utils import get_assets_path

        path = model_path or os.path.join(get_assets_path(), "silero_vad_v6.onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # a 32 ms window is too small to split across cores
        options.inter_op_num_threads = 1
        options.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)

    def __call__(self, window: np.ndarray) -> float:
        """Speech probability of one ``WINDOW``-sample window."""
        x = np.concatenate([self._context, window]).astype(np.float32, copy=False)[None, :]
        prob, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = window[-_CONTEXT:]
        return float(prob.ravel()[0])


@dataclass(frozen=True)
class SpeechStart:
    at: float  # capture time of the window that confirmed speech


@dataclass(frozen=True)
class Utterance:
    audio: np.ndarray
    speech_end_at: float  # capture time of the last voiced window
    decided_at: float  # capture time of the window that ended the turn
    voiced_s: float  # how much of it the VAD called speech
    cut: bool = False  # ended by max length, not by silence


@dataclass(frozen=True)
class SpeechProgress:
    audio: np.ndarray  # the utterance so far, for partial transcripts


@dataclass(frozen=True)
class SpeechPaused:
    """A short silence: the turn may be over. Work can start before it is confirmed."""

    audio: np.ndarray  # exactly what the Utterance will hold if no speech follows
    speech_end_at: float


@dataclass(frozen=True)
class SpeechResumed:
    """Speech came back after a ``SpeechPaused``: the turn goes on."""


VadEvent = SpeechStart | Utterance | SpeechProgress | SpeechPaused | SpeechResumed


class Endpointer:
    """Segments a stream of windows into utterances (hands-free or push-to-talk)."""

    def __init__(self, config: VadConfig, progress_every_s: float = 0.0) -> None:
        self.config = config
        self._ms = 1000 * WINDOW / SAMPLE_RATE
        self._pre_roll: collections.deque[np.ndarray] = collections.deque(
            maxlen=max(1, round(config.pre_roll_ms / self._ms))
        )
        self._progress_windows = (
            round(1000 * progress_every_s / self._ms) if progress_every_s else 0
        )
        self._neg = max(0.05, config.threshold - 0.15)
        self._ptt_down = False
        self._reset()

    def _reset(self) -> None:
        self._in_speech = False
        self._candidate = 0  # consecutive voiced windows before speech is confirmed
        self._frames: list[np.ndarray] = []
        self._voiced = 0
        self._silence = 0
        self._last_voiced_at = 0.0
        self._since_progress = 0
        self._paused = False  # a SpeechPaused is out and no speech has followed yet
        self._end_ms = self.config.end_silence_ms  # shortened by end_early()

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def heard(self) -> np.ndarray:
        """The current utterance so far (pre-roll included)."""
        return np.concatenate(self._frames) if self._frames else np.zeros(0, np.float32)

    def drop_utterance(self) -> np.ndarray:
        """Forget the current utterance (it was the assistant's echo); its last windows
        become the pre-roll, so speech that goes on starts a new utterance of its own.
        Returns the rest of it, the audio before that pre-roll."""
        dropped = np.zeros(0, np.float32)
        if self._in_speech:
            kept = self._pre_roll.maxlen
            self._pre_roll.extend(self._frames[-kept:])
            if self._frames[:-kept]:
                dropped = np.concatenate(self._frames[:-kept])
        self._reset()
        return dropped

    def prepend(self, audio: np.ndarray) -> None:
        """Put ``audio`` (speech heard just before) in front of the current utterance."""
        if self._in_speech and audio.size:
            self._frames.insert(0, np.asarray(audio, dtype=np.float32))

    def push_to_talk(self, down: bool, at: float) -> list[VadEvent]:
        """Press starts an utterance (with pre-roll); release ends it."""
        events: list[VadEvent] = []
        if down and not self._ptt_down:
            self._reset()
            self._in_speech = True
            self._frames = list(self._pre_roll)
            self._last_voiced_at = at
            events.append(SpeechStart(at))
        elif not down and self._ptt_down and self._in_speech:
            events.append(self._finish(at, cut=False))
        self._ptt_down = down
        return events

    def process(self, window: np.ndarray, prob: float, at: float) -> list[VadEvent]:
        if self.config.mode == "push-to-talk":
            return self._process_ptt(window, prob, at)
        cfg = self.config
        events: list[VadEvent] = []
        if not self._in_speech:
            self._pre_roll.append(window)
            if prob >= cfg.threshold:
                self._candidate += 1
                if self._candidate * self._ms >= cfg.min_speech_ms:
                    self._in_speech = True
                    self._frames = list(self._pre_roll)
                    self._voiced = self._candidate
                    self._last_voiced_at = at
                    events.append(SpeechStart(at))
            elif prob < self._neg:
                self._candidate = 0
            return events
        self._frames.append(window)
        if prob >= self._neg:
            if prob >= cfg.threshold:
                self._voiced += 1
            self._silence = 0
            self._last_voiced_at = at
            self._end_ms = cfg.end_silence_ms
            if self._paused:
                self._paused = False
                events.append(SpeechResumed())
        else:
            self._silence += 1
            speculate = cfg.speculate_after_ms
            if speculate and not self._paused and self._silence * self._ms >= speculate:
                self._paused = True
                events.append(SpeechPaused(self._audio(), self._last_voiced_at))
        if self._silence * self._ms >= self._end_ms:
            events.append(self._finish(at, cut=False))
        elif len(self._frames) * WINDOW >= cfg.max_utterance_s * SAMPLE_RATE:
            events.append(self._finish(at, cut=True))
        elif not self._paused:  # a paused turn's audio is being transcribed already
            events += self._progress()
        return events

    def end_early(self, silence_ms: int) -> None:
        """End the current pause's turn after ``silence_ms`` of silence rather than the
        configured end silence (the words so far read as finished); speech resets it."""
        if self._in_speech and self._paused and self.config.mode == "hands-free":
            self._end_ms = min(self._end_ms, silence_ms)

    def set_mode(self, mode: str) -> None:
        """Switch between hands-free and push-to-talk, dropping any half-heard utterance."""
        self.config.mode = mode
        self._ptt_down = False
        self._reset()

    def _process_ptt(self, window: np.ndarray, prob: float, at: float) -> list[VadEvent]:
        if not self._in_speech:
            self._pre_roll.append(window)
            return []
        self._frames.append(window)
        if prob >= self.config.threshold:
            self._voiced += 1
            self._last_voiced_at = at
        if len(self._frames) * WINDOW >= self.config.max_utterance_s * SAMPLE_RATE:
            return [self._finish(at, cut=True)]
        return self._progress()

    def _progress(self) -> list[VadEvent]:
        if not self._progress_windows:
            return []
        self._since_progress += 1
        if self._since_progress < self._progress_windows:
            return []
        self._since_progress = 0
        return [SpeechProgress(np.concatenate(self._frames))]

    def _audio(self) -> np.ndarray:
        # Keep a little of the trailing silence: Whisper clips final consonants without it.
        # With speculation on, never more than the pause that triggered it had, so the
        # speculative audio and the final utterance are the same samples.
        tail_ms = min(_TAIL_MS, self.config.speculate_after_ms or _TAIL_MS)
        keep_tail = min(self._silence, round(tail_ms / self._ms))
        frames = self._frames[: len(self._frames) - self._silence + keep_tail]
        return np.concatenate(frames) if frames else np.zeros(0, np.float32)

    def _finish(self, at: float, cut: bool) -> Utterance:
        utterance = Utterance(
            audio=self._audio(),
            speech_end_at=self._last_voiced_at,
            decided_at=at,
            voiced_s=self._voiced * self._ms / 1000,
            cut=cut,
        )
        self._reset()
        self._pre_roll.clear()
        return utterance
