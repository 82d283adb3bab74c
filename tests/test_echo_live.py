"""Talking to it on loudspeakers: its own voice comes back into its microphone.

A PulseAudio loopback carries what the app plays (app_out.monitor) into the virtual
microphone (mic_feed) with a delay and an attenuation, as a laptop's speakers reach its
microphone through the room. Questions are spoken (espeak-ng) into mic_feed on top. The
assistant must finish its reply without interrupting itself or hearing its own voice as
a question, and a real question spoken over its reply must still interrupt it.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest
from audio_env import play_into_mic, room, speak
from live_helpers import EventLog

from assistant.audio.sinks import SpeakerSink
from assistant.audio.sources import MicrophoneSource
from assistant.config import AssistantConfig
from assistant.events import (
    AudioFinished,
    AudioStarted,
    FinalTranscript,
    ReplyFinished,
    TurnCancelled,
)
from assistant.pipeline import Assistant, load_engines

pytestmark = [pytest.mark.audio, pytest.mark.slow]

TURN_S = 90.0
INTO_REPLY_S = 2.5  # where the question over the reply begins
STORY = (
    "You are a storyteller. Always answer with a long story of at least six full sentences. "
    "Do not use lists, markdown or emoji."
)


@pytest.fixture(autouse=True)
def probes_logged(caplog):
    """What each probe of speech over the reply heard, and the verdict, shown on failure."""
    caplog.set_level(logging.INFO, logger="assistant.pipeline.handlers.endpointing")


@pytest.fixture(scope="module")
def config() -> AssistantConfig:
    config = AssistantConfig()
    config.audio.echo = "cancel"
    config.llm.system_prompt = STORY
    config.llm.max_new_tokens = 110
    return config


@pytest.fixture(scope="module")
def engines(config):
    return load_engines(config)


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("questions")
    return {
        "ocean": speak("Tell me a fun fact about the ocean.", folder / "ocean.wav"),
        # flite's voice: Whisper base hears espeak-ng's "of" as "on"
        "capital": speak("What is the capital of France?", folder / "capital.wav", "slt", "flite"),
    }


def with_lead_in(wav: Path, seconds: float, out: Path) -> Path:
    """The recording after ``seconds`` of silence: a question that lands that far into a reply."""
    subprocess.run(["sox", str(wav), str(out), "pad", f"{seconds}", "0"], check=True, timeout=60)
    return out


def start(config, engines) -> tuple[Assistant, EventLog]:
    log = EventLog()
    assistant = Assistant(config, engines, MicrophoneSource(), SpeakerSink())
    assert assistant.echo.cancelling, assistant.echo.description
    assistant.subscribe(log)
    assistant.start()
    return assistant, log


@pytest.mark.parametrize("latency_ms, volume", [(60, 100), (200, 70)])
def test_it_finishes_its_reply_without_hearing_itself(
    config, engines, questions, latency_ms, volume
):
    with room(latency_ms, volume):
        assistant, log = start(config, engines)
        try:
            play_into_mic(questions["ocean"])
            first = log.wait_for(FinalTranscript, timeout=TURN_S)
            log.wait_for(AudioStarted, lambda e: e.turn == first.turn, timeout=TURN_S)
            done = log.wait_for(AudioFinished, lambda e: e.turn == first.turn, timeout=TURN_S)
        finally:
            left = assistant.shutdown()
    assert left == []
    heard = [e.text for e in log.of(FinalTranscript)]
    assert len(heard) == 1 and "ocean" in heard[0].lower(), log.describe()
    assert not done.interrupted, log.describe()
    assert not [e for e in log.of(TurnCancelled) if e.turn == first.turn], log.describe()


def test_a_question_over_its_reply_interrupts_it_and_is_answered(
    config, engines, questions, tmp_path
):
    question = with_lead_in(questions["capital"], INTO_REPLY_S, tmp_path / "question.wav")
    with room(60, 100):
        assistant, log = start(config, engines)
        try:
            play_into_mic(questions["ocean"])
            first = log.wait_for(FinalTranscript, timeout=TURN_S)
            log.wait_for(AudioStarted, lambda e: e.turn == first.turn, timeout=TURN_S)
            asked = time.monotonic() + INTO_REPLY_S
            play_into_mic(question)  # over the reply, which is still playing
            second = log.wait_for(FinalTranscript, lambda e: e.turn > first.turn, timeout=TURN_S)
            answer = log.wait_for(ReplyFinished, lambda e: e.turn == second.turn, timeout=TURN_S)
            log.wait_for(AudioFinished, lambda e: e.turn == second.turn, timeout=TURN_S)
        finally:
            left = assistant.shutdown()
    assert left == []
    cancelled = [
        i for i, e in enumerate(log.events) if isinstance(e, TurnCancelled) and e.turn == first.turn
    ]
    assert cancelled, log.describe()  # the reply went on over the question
    index = cancelled[0]
    assert log.events[index].reason == "barge-in", log.describe()
    cut_after = log.arrived[index] - asked
    print(f"\nbarge-in {cut_after:.2f} s after the question began: {second.text!r}")
    # not before it (its own voice taken for the user's) and soon after (1.6 s long)
    assert 0 < cut_after < 3.0, log.describe()
    heard = second.text.lower()
    assert "capital" in heard and "france" in heard, log.describe()
    assert "paris" in answer.text.lower(), log.describe()
    # Not asserted here: a question as the session's first reply starts, before the
    # canceller has heard the room, loses its first words or is missed (issue #13).
