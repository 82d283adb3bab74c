"""The live assistant end to end through real audio devices (the test PulseAudio null sinks).

Questions are spoken (espeak-ng) into mic_feed, whose monitor is the app's default microphone;
the app's replies are recorded from app_out.monitor, its default speaker. The pipeline's event
times and the recording share ``time.monotonic()``, so interruption latency is measured on the
speaker itself. Run with ``tests/run_suite.sh tests/test_live_audio.py``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from audio_env import Recorder, play_into_mic, speak
from live_helpers import (
    EventLog,
    LineReader,
    TappedSpeaker,
    last_sound,
    record_until_quiet,
    sound_seconds,
    sound_spans,
    start_listen,
    wait_for_file,
)

from assistant.asr import WhisperRecognizer
from assistant.audio.sources import MicrophoneSource
from assistant.config import AsrConfig, AssistantConfig
from assistant.events import (
    AudioFinished,
    AudioStarted,
    ErrorOccurred,
    FinalTranscript,
    Ready,
    SpeechStarted,
    TurnCancelled,
    TurnTimings,
)
from assistant.model_store import ModelStore
from assistant.pipeline import Assistant, load_engines
from assistant.session import TurnLog

pytestmark = [pytest.mark.audio, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
TURN_S = 60.0  # upper bound for one turn (ASR + LLM + TTS) on a loaded 2-core machine
STOP_BOUND_S = 1.0  # the old reply must fall silent this soon after the barge-in is detected
LONG_REPLY_PROMPT = (
    "You are a storyteller. Always answer with a long story of at least eight full sentences. "
    "Do not use lists, markdown or emoji."
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@pytest.fixture(scope="module")
def recognizer() -> WhisperRecognizer:
    """The project's Whisper, to check what actually came out of the speaker."""
    return WhisperRecognizer(ModelStore().whisper_dir(), AsrConfig())


@pytest.fixture(scope="module")
def live_config() -> AssistantConfig:
    config = AssistantConfig()
    config.llm.max_new_tokens = 120
    config.llm.system_prompt = LONG_REPLY_PROMPT
    return config


@pytest.fixture(scope="module")
def engines(live_config):
    return load_engines(live_config)


@pytest.fixture
def fresh_engines(engines):
    engines.chat.conversation.clear()  # each test starts a new conversation
    return engines


@pytest.fixture
def app_process(pulse, tmp_path):
    """Starts ``voice-assistant listen --ready-file F`` on the test server's devices; yields
    (process, ready file, stdout reader, stderr reader) and kills it if a test left it running."""
    ready = tmp_path / "listening"
    proc = start_listen(pulse, ready)
    out, err = LineReader(proc.stdout), LineReader(proc.stderr)
    try:
        yield proc, ready, out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        out.join()
        err.join()


def test_spoken_question_is_answered_through_devices(app_process, recognizer, tmp_path):
    proc, ready, out, err = app_process
    question = speak("What is the capital of France?", tmp_path / "question.wav")

    assert wait_for_file(ready, proc, timeout=180), (
        f"the app never became ready (exit {proc.poll()}):\n{err.text()}"
    )
    with Recorder("app_out.monitor") as recorder:
        t_asked = time.monotonic()
        play_into_mic(question)
        try:
            onset = recorder.wait_for_sound(since=t_asked, timeout=TURN_S)
        except TimeoutError as exc:
            pytest.fail(f"{exc}; stdout:\n{out.text()}\nstderr:\n{err.text()}")

        # The reply is complete once the app printed it and the speaker has been quiet 1.5 s.
        def replied() -> bool:
            return out.wait_for(lambda line: line.startswith("assistant: "), 0) is not None

        recording = record_until_quiet(
            recorder, since=onset, quiet_s=1.5, timeout=2 * TURN_S, ready=replied
        )

    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the app hung on SIGINT; stderr:\n{err.text()}")
    out.join()
    err.join()
    assert code == 0, f"exit status {code}; stderr:\n{err.text()}"
    assert not ready.exists(), "the app did not remove its ready file on shutdown"
    assert not [line for line in err.lines if line.startswith("error (")], err.text()

    you = out.wait_for(lambda s: s.startswith("you: "), 0)
    assert you and re.search(r"capital|france", you, re.I), f"stdout:\n{out.text()}"
    printed = out.wait_for(lambda s: s.startswith("assistant: "), 0)
    reply_text = printed.removeprefix("assistant: ").strip()
    assert len(words(reply_text)) >= 2, f"stdout:\n{out.text()}"

    audio = recording.samples[recording.index_of(onset - 0.1) :]
    heard = recognizer.transcribe(audio)
    print(f"\nprinted: {reply_text!r}\nplayed:  {heard.text!r} ({audio.size / 16000:.1f} s)")
    assert heard.language == "en", heard
    assert len(words(heard.text)) >= 2, heard
    # What played is the printed reply, not some other sound.
    shared = set(words(heard.text)) & set(words(reply_text))
    assert len(shared) >= 0.5 * len(set(words(reply_text))), (heard.text, reply_text)


def test_barge_in_stops_playback_and_answers_the_new_question(
    pulse, live_config, fresh_engines, tmp_path
):
    story = speak("Tell me a long story about a dragon and a knight.", tmp_path / "story.wav")
    # Long enough that turn 2 cannot answer before the silence after the stop is measurable.
    sum_q = speak("What is two plus two, if you count it on your fingers?", tmp_path / "sum.wav")
    log, turns, speaker = EventLog(), TurnLog(), TappedSpeaker()
    assistant = Assistant(live_config, fresh_engines, MicrophoneSource(), speaker)
    assistant.subscribe(log)
    assistant.subscribe(turns)
    with Recorder("app_out.monitor") as recorder:
        assistant.start()
        try:
            log.wait_for(Ready, timeout=10)
            assert not log.of(ErrorOccurred), log.describe()

            play_into_mic(story)
            first = log.wait_for(FinalTranscript, timeout=TURN_S)
            t1 = first.turn
            started1 = log.wait_for(AudioStarted, lambda e: e.turn == t1, timeout=TURN_S)
            # Let the reply be heard on the speaker for 1.5 s (the barge-in then lands in its
            # second clause, not the pause after "Once upon a time,") with several seconds of
            # it still queued, so that there is plenty left to cut off.
            heard1 = recorder.wait_for_sound(since=started1.at - 0.1, timeout=TURN_S)
            recorder.wait_until(heard1 + 1.5, timeout=TURN_S)
            speaker.wait_for_backlog(started1.at, 2 * STOP_BOUND_S + 1.0, timeout=TURN_S)
            play_into_mic(sum_q)
            barge = log.wait_for(SpeechStarted, lambda e: e.turn > t1, timeout=TURN_S)
            t2 = barge.turn
            second = log.wait_for(FinalTranscript, lambda e: e.turn == t2, timeout=TURN_S)
            started2 = log.wait_for(AudioStarted, lambda e: e.turn == t2, timeout=TURN_S)
            recording = recorder.wait_until(started2.at + 1.0, timeout=TURN_S)
        finally:
            left = assistant.shutdown()
    assert left == [], f"threads left running: {left}"

    t_bi, t_new = barge.at, started2.at  # speech detected; turn 2's first sample played
    t_clear = speaker.first_clear_after(t_bi - 1.0)  # when the pipeline cleared the speaker
    # Turn 1 audio queued but not yet played when the barge-in was detected (a lower bound).
    unplayed = speaker.backlog(started1.at, t_bi)
    stopped = last_sound(recording, t_bi, t_new - 0.05)  # last sound of turn 1
    delay = (stopped or t_bi) - t_bi
    spans = sound_spans(recording, started1.at - 0.1, t_new + 1.0)
    print(
        f"\n{log.describe()}\nsound on the speaker (s after turn 1 started): "
        + ", ".join(f"{a - started1.at:.2f}-{b - started1.at:.2f}" for a, b in spans)
        + f"\nbarge-in detected at {t_bi - started1.at:.2f} s with {unplayed:.2f} s of turn 1 "
        f"unplayed; speaker cleared {1000 * ((t_clear or float('nan')) - t_bi):.0f} ms later"
        f"\nbarge-in stop delay: {1000 * delay:.0f} ms; turn 2 audio after {t_new - t_bi:.2f} s"
    )

    # The pipeline's view: turn 1 was cancelled by the barge-in and its audio interrupted.
    assert t2 == t1 + 1, log.describe()
    assert re.search(r"dragon|knight|story", first.text, re.I), first
    assert [e.reason for e in log.of(TurnCancelled, t1)] == ["barge-in"], log.describe()
    assert [e.interrupted for e in log.of(AudioFinished, t1)] == [True], log.describe()
    assert turns.turns[t1].outcome == "interrupted"
    assert log.of(TurnTimings, t1), "turn 1 never reported its timings"
    assert re.search(r"two|2|plus", second.text, re.I), second
    assert log.of(TurnTimings, t2), "turn 2 never reported its timings"

    # The speaker's view. Turn 1 was playing when the barge-in came, with more than
    # STOP_BOUND_S of it still to play (else the silence checks below would prove nothing) ...
    assert started1.at < t_bi < t_new
    played1 = sound_seconds(recording, started1.at, t_bi)
    assert played1 > 0.5, f"turn 1 played only {played1:.2f} s before the barge-in"
    assert last_sound(recording, t_bi - 0.5, t_bi) is not None, (
        "turn 1 was not sounding when the barge-in came, so its stop cannot be measured"
    )
    assert unplayed > STOP_BOUND_S + 0.5, f"only {unplayed:.2f} s of turn 1 was left"
    # ... it fell silent within STOP_BOUND_S of the new speech being detected, and none of
    # its remaining audio played before turn 2's reply: nothing sounds from then until turn
    # 2's first sample, and the next sound is turn 2's reply, when the pipeline says it starts.
    assert delay < STOP_BOUND_S, f"turn 1 kept playing {delay:.2f} s after the barge-in"
    assert t_new - t_bi > STOP_BOUND_S + 0.5, "turn 2 answered too fast to see the gap"
    assert sound_seconds(recording, t_bi + STOP_BOUND_S, t_new - 0.05) == 0.0, spans
    onset2 = recording.onset(since=t_bi + STOP_BOUND_S)
    assert onset2 is not None and abs(onset2 - t_new) < 0.3, (onset2 - t_new, spans)
    assert sound_seconds(recording, t_new, t_new + 1.0) > 0.3, "turn 2's reply did not play"
