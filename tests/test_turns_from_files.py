"""Whole turns through the real pipeline with a file as microphone (tests 4 and 5)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from audio_env import speak

from assistant.audio import read_audio
from assistant.audio.sinks import FileSink
from assistant.audio.sources import FileSource
from assistant.config import AssistantConfig
from assistant.errors import AudioDeviceError
from assistant.events import ErrorOccurred, FinalTranscript, ReplyToken
from assistant.pipeline import Assistant
from assistant.session import TurnLog


def run_turns(
    engines, audio: np.ndarray, config: AssistantConfig | None = None, timeout=240, realtime=False
):
    """Feed ``audio`` (then silence) through the pipeline; return the log once it is idle."""
    config = config or AssistantConfig()
    config.llm.max_new_tokens = 32
    source = FileSource(audio=audio, realtime=realtime)
    sink = FileSink(sample_rate=engines.tts.sample_rate)
    log = TurnLog()
    events = []
    assistant = Assistant(config, engines, source, sink)
    assistant.subscribe(log)
    assistant.subscribe(events.append)
    assistant.start()
    try:
        # The file ending raises no event, so wait for it first: a turn may finish before.
        assert source.finished.wait(timeout), "the file source never finished"
        assert log.wait(
            lambda lg: lg.turns and all(r.outcome for r in lg.turns.values()), timeout
        ), f"the turn did not finish: {log.turns}"
    finally:
        assert assistant.shutdown() == [], "a worker thread did not stop"
    return log, events, sink


@pytest.fixture(scope="module")
def question(speech_dir) -> np.ndarray:
    return read_audio(speak("What is the capital of France?", speech_dir / "question.wav"))


@pytest.mark.parametrize("kind", ["silence", "noise", "noise-bursts"])
def test_silence_and_noise_give_no_transcript_and_no_reply(engines, question, kind):
    """Seconds of silence or noise, then a real question: only the question is answered."""
    rng = np.random.default_rng(3)
    n = 16000 * 5
    lead = {
        "silence": np.zeros(n),
        "noise": 0.08 * rng.standard_normal(n),
        # loud bursts long enough to trip the VAD: they must end as "nothing heard"
        "noise-bursts": np.concatenate(
            [np.concatenate([0.3 * rng.standard_normal(8000), np.zeros(12000)]) for _ in range(4)]
        ),
    }[kind]
    gap = np.zeros(16000)
    audio = np.concatenate([lead, gap, question, gap]).astype(np.float32)
    log, events, sink = run_turns(engines, audio)
    transcripts = [e for e in events if isinstance(e, FinalTranscript)]
    assert len(transcripts) == 1, [e.text for e in transcripts]
    assert re.search(r"capital|france", transcripts[0].text, re.I)
    first_token_turns = {e.turn for e in events if isinstance(e, ReplyToken)}
    assert first_token_turns == {transcripts[0].turn}, "only the question may get a reply"
    assert not [e for e in events if isinstance(e, ErrorOccurred)]
    assert sink.audio.size > 0


def test_sixty_second_utterance(engines, speech_dir):
    words = (
        "I would like to tell you about my long day, which started early in the morning "
        "when the alarm rang, and then I made coffee, read the news, walked the dog around "
        "the park, answered a few emails, met a friend for lunch, talked about music and "
        "travel, went back to work, fixed a difficult bug, called my mother, cooked dinner "
        "with fresh vegetables, watched a documentary about whales, and finally"
    )
    path = speak(f"{words}, {words}, {words} went to bed.", speech_dir / "long.wav")
    audio = read_audio(path)
    seconds = audio.size / 16000
    assert 55 <= seconds <= 120, seconds
    config = AssistantConfig()
    config.vad.end_silence_ms = 1200  # espeak pauses between clauses must not end the turn
    log, events, sink = run_turns(engines, np.concatenate([audio, np.zeros(16000)]), config)
    assert not [e for e in events if isinstance(e, ErrorOccurred)]
    transcripts = [e for e in events if isinstance(e, FinalTranscript)]
    assert len(transcripts) == 1
    text = transcripts[0].text.lower()
    for word in ("coffee", "dog", "lunch", "whales", "bed"):
        assert word in text, (word, text)
    record = log.turns[transcripts[0].turn]
    assert record.outcome == "answered" and record.reply


def test_a_pause_mid_question_does_not_split_the_turn(engines, speech_dir, monkeypatch):
    """A pause longer than the speculation delay but shorter than the end of turn: the
    speculative reply to the first half is dropped unseen and forgotten. The endpointer
    found the speech, so the recogniser does not look for it a second time."""
    import assistant.asr

    checks: list[int] = []
    monkeypatch.setattr(assistant.asr, "contains_speech", lambda audio: checks.append(1) or True)
    first = trim(read_audio(speak("What is the capital", speech_dir / "half1.wav")))
    second = trim(read_audio(speak("of France?", speech_dir / "half2.wav")))
    pause = np.zeros(int(16000 * 0.4), np.float32)
    config = AssistantConfig()
    assert config.vad.speculate_after_ms < 400 < config.vad.end_silence_ms
    engines.chat.conversation.clear()
    audio = np.concatenate([first, pause, second, np.zeros(16000, np.float32)])
    log, events, sink = run_turns(engines, audio, config)
    transcripts = [e.text for e in events if isinstance(e, FinalTranscript)]
    assert len(transcripts) == 1 and re.search(r"capital", transcripts[0], re.I), transcripts
    assert re.search(r"france|friends", transcripts[0], re.I), "the second half was kept"
    users = [t["content"] for t in engines.chat.conversation.turns if t["role"] == "user"]
    assert users == transcripts, "the dropped attempt must not stay in the LLM memory"
    assert checks == [], "speech the endpointer found was checked for speech again"
    engines.chat.conversation.clear()


def trim(audio: np.ndarray) -> np.ndarray:
    """Without the synthesiser's own leading and trailing silence."""
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1]


def test_speculation_overlaps_the_end_of_turn_wait(engines, question):
    config = AssistantConfig()
    audio = np.concatenate([question, np.zeros(16000)])
    log, events, sink = run_turns(engines, audio, config, realtime=True)  # needs real time
    (record,) = log.turns.values()
    t = record.timings_ms
    sequential = t["endpoint"] + t["asr"] + t["llm_first_phrase"] + t["tts_first_audio"]
    # Work starts after the speculation delay, not at the end of the turn: all of the
    # rest of the end-of-turn wait is saved, less the threads' hand-offs.
    saved = t["endpoint"] - config.vad.speculate_after_ms
    assert saved > 100 and t["voice_to_voice"] < sequential - saved + 60, t
    # The first sample handed over is the voice itself, not Piper's quiet lead-in.
    first_10_ms = sink.audio[: engines.tts.sample_rate // 100]
    assert np.abs(first_10_ms).max() > 10 ** (-50 / 20)


def test_a_finished_sentence_ends_the_turn_on_a_shorter_silence(engines, question):
    config = AssistantConfig()
    audio = np.concatenate([question, np.zeros(16000)])
    log, events, sink = run_turns(engines, audio, config, realtime=True)
    (record,) = log.turns.values()
    assert record.transcript.rstrip().endswith("?"), record.transcript
    endpoint = record.timings_ms["endpoint"]
    assert endpoint < config.vad.end_silence_ms - 64, record.timings_ms


class UnpluggedOnce(FileSource):
    """A file-fed microphone that fails like an unplugged device once, a second in."""

    def __init__(self, audio: np.ndarray) -> None:
        super().__init__(audio=audio, realtime=True)
        self.failed = False
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        super().start()

    def read(self, timeout: float):
        if not self.failed and self._pos >= self.sample_rate:
            self.failed = True
            raise AudioDeviceError("the microphone stopped delivering audio (unplugged?)")
        return super().read(timeout)


def test_microphone_lost_mid_stream_is_reported_and_recovered(engines, question):
    from assistant.events import DeviceRestored

    audio = np.concatenate([np.zeros(16000 * 2, np.float32), question, np.zeros(16000)])
    source = UnpluggedOnce(audio)
    log, events = TurnLog(), []
    assistant = Assistant(AssistantConfig(), engines, source, FileSink(sample_rate=22050))
    assistant.subscribe(log)
    assistant.subscribe(events.append)
    assistant.start()
    try:
        assert log.wait(lambda lg: any(r.outcome == "answered" for r in lg.turns.values()), 90)
    finally:
        assert assistant.shutdown() == []
    kinds = [type(e).__name__ for e in events]
    errors = [e for e in events if isinstance(e, ErrorOccurred)]
    assert [e.stage for e in errors] == ["audio-in"] and "unplugged" in errors[0].message
    assert (
        kinds.index("ErrorOccurred")
        < kinds.index("DeviceRestored")
        < kinds.index("FinalTranscript")
    )
    assert source.starts == 2 and any(isinstance(e, DeviceRestored) for e in events)
