"""Talking to it on loudspeakers: its own voice comes back into its microphone.

A PulseAudio loopback carries what the app plays (app_out.monitor) into the virtual
microphone (mic_feed) with a delay and an attenuation, as a laptop's speakers reach its
microphone through the room. Questions are spoken (espeak-ng) into mic_feed on top. The
assistant must finish its reply without interrupting itself or hearing its own voice as
a question, and a real question spoken over its reply must still interrupt it and be
answered.
"""

from __future__ import annotations

import re
import time

import pytest
from audio_env import Recorder, play_into_mic, room, speak
from live_helpers import EventLog

from assistant.audio.sinks import SpeakerSink
from assistant.audio.sources import MicrophoneSource
from assistant.config import AssistantConfig
from assistant.events import (
    AudioFinished,
    AudioStarted,
    FinalTranscript,
    ReplyToken,
    TurnCancelled,
)
from assistant.pipeline import Assistant, load_engines

pytestmark = [pytest.mark.audio, pytest.mark.slow]

TURN_S = 90.0
CAPITAL = "What is the capital of France?"
STORY = (
    "You are a storyteller. Always answer with a long story of at least six full sentences. "
    "Do not use lists, markdown or emoji."
)


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
        # another voice than the reply's, as a user's is (and one that Whisper base
        # hears right on its own: espeak-ng's "of" reads as "on")
        "capital": speak(CAPITAL, folder / "capital.wav", "slt", engine="flite"),
    }


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


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


def _ask_over_the_reply(config, engines, first, over, reply_played_s: float):
    """Asks ``first``, then speaks ``over`` once ``reply_played_s`` of the reply has come
    out of the speaker. Returns (seconds from the question to the barge-in,
    what was heard the second time, the reply to it)."""
    with room(60, 100), Recorder("app_out.monitor") as speaker:
        assistant, log = start(config, engines)
        try:
            play_into_mic(first)
            heard = log.wait_for(FinalTranscript, timeout=TURN_S)
            began = log.wait_for(AudioStarted, lambda e: e.turn == heard.turn, timeout=TURN_S)
            if reply_played_s:
                onset = speaker.wait_for_sound(since=began.at - 0.5, timeout=TURN_S)
                speaker.wait_until(onset + reply_played_s, timeout=TURN_S)
            asked = time.monotonic()
            play_into_mic(over)  # over the reply, which is still playing
            second = log.wait_for(FinalTranscript, lambda e: e.turn > heard.turn, timeout=TURN_S)
            log.wait_for(AudioFinished, lambda e: e.turn == second.turn, timeout=TURN_S)
        finally:
            left = assistant.shutdown()
    assert left == []
    cancelled = [
        (arrived, e)
        for arrived, e in zip(log.arrived, log.events, strict=True)
        if isinstance(e, TurnCancelled) and e.turn == heard.turn
    ]
    assert cancelled and cancelled[0][1].reason == "barge-in", log.describe()
    reply = "".join(e.text for e in log.of(ReplyToken) if e.turn == second.turn)
    print(f"\nbarge-in {cancelled[0][0] - asked:.2f} s after the question began: {second.text!r}")
    return cancelled[0][0] - asked, second.text, reply


def test_a_question_over_its_reply_interrupts_it_and_is_answered(config, engines, questions):
    """Mid-reply (2.5 s of it played): the user's words, all of them, take the turn."""
    cut_after, heard, reply = _ask_over_the_reply(
        config, engines, questions["ocean"], questions["capital"], reply_played_s=2.5
    )
    assert words(heard) == words(CAPITAL), heard
    assert "paris" in words(reply), reply
    assert cut_after < 2.5  # the question is 1.6 s long


def test_a_question_as_its_reply_starts_still_interrupts_it(config, engines, questions):
    """Both start together, before the cancellers have heard the room: the question's
    first word may be lost under the reply's, but the user takes the turn and what they
    asked about comes through."""
    cut_after, heard, _ = _ask_over_the_reply(
        config, engines, questions["ocean"], questions["capital"], reply_played_s=0.0
    )
    assert {"capital", "france"} <= set(words(heard)), heard
    assert cut_after < 3.5
