"""Stand-ins for the models, for fast tests of the pipeline's turn logic (tests only).

Each does in microseconds what its engine does in a hundred milliseconds, and lets a
test hold it at a chosen point (a reply mid-stream) to set up an exact interleaving.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

from assistant.asr import Abandoned, Transcript
from assistant.audio.blocks import AudioBlock
from assistant.config import AssistantConfig
from assistant.llm.base import ChatBackend
from assistant.pipeline.engines import Engines

RATE = 16000
BLOCK = 512  # one VAD window


def energy_vad(window: np.ndarray) -> float:
    """Speech probability from loudness: the test audio is tone (speech) or zeros."""
    return 1.0 if float(np.sqrt(np.mean(window**2))) > 0.05 else 0.0


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


class FakeRecognizer:
    """ "Hears" one word per 0.25 s of speech: a longer utterance reads differently."""

    def __init__(self, words=("what", "is", "the", "time", "now", "please"), ending="?"):
        self.config = AssistantConfig().asr
        self.words = words
        self.ending = ending
        self.calls: list[int] = []  # voiced windows of each transcribed audio

    def transcribe(self, audio, abandoned=lambda: False, speech_known=False) -> Transcript:
        voiced = sum(energy_vad(audio[i : i + BLOCK]) for i in range(0, audio.size, BLOCK))
        self.calls.append(int(voiced))
        if abandoned():
            raise Abandoned
        n = round(voiced * BLOCK / RATE / 0.25)
        text = " ".join(self.words[:n]).capitalize()
        return Transcript(text + (self.ending if text else ""), "en", 1.0)


class FakeChat(ChatBackend):
    """Streams a scripted reply word by word; ``hold_after`` words, it waits for
    ``release`` (a reply mid-stream) while still honouring cancellation."""

    name = "fake"

    def __init__(self, reply="It is noon. The sun is high and the sky is clear.", hold_after=0):
        super().__init__(AssistantConfig().llm.system_prompt)
        self.config = AssistantConfig().llm
        self.script = reply
        self.hold_after = hold_after
        self.release = threading.Event()
        self.holding = threading.Event()  # set while a reply waits at hold_after
        self.questions: list[str] = []
        self.replies: queue.Queue[tuple[str, bool]] = queue.Queue()

    def describe(self) -> str:
        return "fake chat"

    def reply(self, user_text, on_text, cancelled=lambda: False):
        with self._lock:
            self.questions.append(user_text)
            said = []
            was_cancelled = False
            for i, word in enumerate(self.script.split()):
                if self.hold_after and i == self.hold_after:
                    self.holding.set()
                    while not self.release.wait(0.005):
                        if cancelled():
                            break
                    self.holding.clear()
                if cancelled():
                    was_cancelled = True
                    break
                piece = word if not said else " " + word
                said.append(piece)
                on_text(piece)
            text = "".join(said)
            self.conversation.add(user_text, text)
        self.replies.put((text, was_cancelled))
        return text, was_cancelled


class FakeVoice:
    """20 ms of tone per word, in one chunk per word."""

    sample_rate = RATE

    def synthesize(self, text: str):
        for _ in text.split():
            yield tone(0.02)


def fake_engines(chat: FakeChat | None = None) -> Engines:
    return Engines(FakeRecognizer(), chat or FakeChat(), FakeVoice())


class ScriptedMicrophone:
    """A microphone the test speaks into: ``say`` queues audio, read hands it out a
    window at a time as fast as the pipeline takes it (stamped with the read time); with
    nothing queued it is a quiet room, a window of silence every 32 ms, as a real one."""

    sample_rate = RATE

    def __init__(self) -> None:
        self._blocks: queue.Queue[np.ndarray] = queue.Queue()
        self._closed = threading.Event()
        self._drained = threading.Event()

    def say(self, *pieces: np.ndarray) -> None:
        audio = np.concatenate(pieces)
        self._drained.clear()
        for i in range(0, audio.size - BLOCK + 1, BLOCK):
            self._blocks.put(audio[i : i + BLOCK])

    def wait_drained(self, timeout: float) -> bool:
        """Until everything said so far has been read by the pipeline."""
        return self._drained.wait(timeout)

    def start(self) -> None:
        self._closed.clear()

    def read(self, timeout: float):
        if self._closed.is_set():
            return None
        try:
            samples = self._blocks.get_nowait()
        except queue.Empty:
            self._drained.set()
            if self._closed.wait(BLOCK / RATE):
                return None
            samples = np.zeros(BLOCK, np.float32)
        block = AudioBlock(samples, time.monotonic())
        if self._blocks.empty():
            self._drained.set()
        return block

    def close(self) -> None:
        self._closed.set()
