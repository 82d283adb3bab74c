"""The echo canceller stage and the barge-in policies, without models.

The room is simulated with numpy: what the speaker plays comes back into the microphone
after a delay, through a few decaying reflections, quieter; the user may speak on top.
The far end reaches the canceller the way the speaker sink hands it over: device-rate
blocks with the time each starts to play.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from audio_env import read_wav, speak
from fake_engines import (
    FakeChat,
    FakeRecognizer,
    FakeVoice,
    ScriptedMicrophone,
    energy_vad,
    silence,
    tone,
)

from assistant.audio.blocks import AudioBlock
from assistant.audio.playback_reference import PlaybackReference
from assistant.audio.resample import resample
from assistant.audio.sinks import FileSink
from assistant.config import AssistantConfig
from assistant.echo import backends
from assistant.echo.backends import create_cancellers
from assistant.echo.setup import EchoSetup, echo_setup
from assistant.events import FinalTranscript, PhrasePlaying, TurnCancelled
from assistant.pipeline import Assistant, Engines
from assistant.pipeline.barge_in import HalfDuplex, Verdict, WordsFirst, words_of
from assistant.pipeline.handlers.echo_cancelling import EchoCancelling
from assistant.pipeline.stage import StageContext

RATE = 16000
DEVICE_RATE = 48000
BLOCK = 512
OUTPUT_LATENCY_S = 0.04


def room(far: np.ndarray, delay_ms: float, level_db: float, seed: int = 0) -> np.ndarray:
    """``far`` as a microphone hears it across a room: delayed, reflected, attenuated."""
    rng = np.random.default_rng(seed)
    response = np.zeros(int(0.3 * RATE), np.float32)
    response[int(delay_ms * RATE / 1000)] = 1.0
    for k in range(1, 10):
        at = int(delay_ms * RATE / 1000) + int(rng.integers(40, int(0.25 * RATE)))
        response[min(at, response.size - 1)] += rng.normal(0, 0.35) * np.exp(-k / 3)
    return (np.convolve(far, response)[: far.size] * 10 ** (level_db / 20)).astype(np.float32)


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voices")
    far = speak(
        "The ocean covers most of our planet. Its deepest trench reaches eleven kilometres, "
        "and strange creatures glow in the dark water far below the waves.",
        folder / "far.wav",
    )
    near = speak("What is the capital of France?", folder / "near.wav", voice="en-us+f3")
    return read_wav(far)[0], read_wav(near)[0]


def cancel(far: np.ndarray, mic: np.ndarray, backend: str) -> np.ndarray:
    """Runs the stage over ``mic`` while ``far`` plays, as live: block by block, the far
    end handed over in 20 ms device blocks stamped with when they play, 40 ms ahead."""
    reference = PlaybackReference(RATE)
    canceller, _, why = create_cancellers(backend)
    assert canceller is not None, why
    stage = EchoCancelling(StageContext(AssistantConfig()), canceller, reference)
    far_device = resample(far, RATE, DEVICE_RATE)
    device_block = DEVICE_RATE // 50
    t0 = 1000.0
    played = 0
    out = []
    for i in range(0, mic.size - BLOCK + 1, BLOCK):
        captured_at = t0 + (i + BLOCK) / RATE
        # A speaker's callback hands over each block before it plays (its output latency)
        while played / DEVICE_RATE < (i + BLOCK) / RATE + OUTPUT_LATENCY_S:
            chunk = far_device[played : played + device_block]
            chunk = np.pad(chunk, (0, device_block - chunk.size))
            reference.played(chunk, DEVICE_RATE, t0 + played / DEVICE_RATE)
            played += device_block
        out += [b.samples for b in stage.process(AudioBlock(mic[i : i + BLOCK], captured_at))]
    return np.concatenate(out)


def db(x: np.ndarray) -> float:
    return 10 * np.log10(float(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


BACKENDS = ["speex", "webrtc"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("delay_ms", [20, 60, 120, 250])
@pytest.mark.parametrize("level_db", [0, -10])
def test_the_echo_is_taken_out(voices, delay_ms, level_db, backend):
    far, _ = voices
    far = np.concatenate([far, far])  # the canceller has converged by the second half
    mic = room(far, delay_ms, level_db)
    out = cancel(far, mic, backend)
    half = slice(mic.size // 2, out.size)
    reduction = db(mic[half]) - db(out[half])
    print(f"\n{backend}: delay {delay_ms} ms, echo {level_db} dB: reduced by {reduction:.1f} dB")
    assert reduction > 20


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_users_voice_survives_double_talk(voices, backend):
    far, near = voices
    far = np.concatenate([far, far])
    mic = room(far, 60, -6)
    at = far.size // 2 + RATE  # the user speaks over the converged second half
    mic[at : at + near.size] += near
    out = cancel(far, mic, backend)
    spoken = slice(at, at + near.size)
    kept = db(out[spoken]) - db(near)
    echo_only = slice(at + near.size + RATE // 2, out.size)
    residue = db(out[echo_only]) - db(mic[echo_only])
    print(f"\n{backend}: user's voice {kept:.1f} dB in double talk; echo alone {residue:.1f} dB")
    assert kept > -15  # attenuated while both talk, never erased
    assert kept - residue > 15  # the user stands far above what is left of the echo


def test_the_far_end_is_on_the_capture_clock():
    reference = PlaybackReference(RATE)
    ramp = np.linspace(-0.5, 0.5, DEVICE_RATE // 10, dtype=np.float32)  # 100 ms
    for k in range(5):
        reference.played(ramp[k * 960 : (k + 1) * 960], DEVICE_RATE, 10.0 + k * 0.02)
    got = reference.far_end(10.0, RATE // 10)
    expected = resample(ramp, DEVICE_RATE, RATE)
    assert np.abs(got[400:1200] - expected[400:1200]).max() < 0.05  # past soxr's hold-back
    assert not reference.far_end(9.0, 160).any()  # before anything played: silence
    assert reference.level_db(10.02, 10.08) > -20 and reference.level_db(11.0, 11.5) < -100


def test_the_far_end_follows_the_device_over_an_underrun():
    """Block times jitter by a few ms and are kept to the sample count, but after the
    device ran dry (silence it inserted itself) the next block plays when it says."""
    reference = PlaybackReference(RATE)
    tone = np.full(960, 0.25, np.float32)  # 20 ms blocks
    for k in range(10):
        reference.played(tone, DEVICE_RATE, 10.0 + k * 0.02 + (0.004 if k % 2 else 0.0))
    # continuous (no hole where a block came 4 ms late), up to soxr's hold-back
    assert min(reference.level_db(t, t + 0.005) for t in np.arange(10.04, 10.18, 0.005)) > -20
    reference.played(tone, DEVICE_RATE, 10.230, after_gap=True)  # after 30 ms of silence
    assert reference.level_db(10.19, 10.228) < -100  # the gap, where the device made it
    assert reference.level_db(10.231, 10.236) > -20  # and the stream goes on after it


def test_words_first_tells_the_echo_from_the_user():
    policy = WordsFirst()
    policy.follow(PhrasePlaying(1, "The ocean is a vast and mysterious place.", 10.0))
    policy.follow(PhrasePlaying(1, "It covers most of our planet.", 12.5))
    assert not policy.judge("it covers most", 13.0, 14.1)  # its own voice, come back
    assert not policy.judge("the oceans cover", 12.0, 13.1)  # heard with other endings
    assert not policy.judge("various plays", 11.0, 12.1)  # heard as other words alike
    assert not policy.judge("you", 13.0, 14.1)  # one word: a residue as often as not
    assert policy.judge("What is the capital of France?", 12.0, 14.1)
    # more words than the time holds: made up by the recogniser from the residue
    made_up = "to address the most important issues that we have in the US."
    assert not policy.judge(made_up, 12.0, 14.1) and policy.judge(made_up, 11.0, 14.5)
    assert policy.judge("首都是哪个城市", 13.0, 14.1)  # quick Mandarin, not made up
    policy.follow(PhrasePlaying(1, "Rayleigh scattering.", 40.0))
    assert not policy.judge("Rayleigh scattering", 40.2, 41.3)
    # sounding like what it said long before is not sounding like what it says now
    assert policy.judge("various plays", 40.2, 41.3)
    policy.follow(FinalTranscript(2, "Tell me more.", "en"))  # a new reply: nothing said yet
    assert policy.judge("it covers most", 50.0, 51.1)
    assert words_of("你好世界 hello") == ["你", "好", "世", "界", "hello"]


def test_half_duplex_ignores_speech_only_while_it_is_audible():
    reference = PlaybackReference(RATE)
    for k in range(10):  # 200 ms of the assistant's voice from t = 5 s
        reference.played(np.full(960, 0.3, np.float32), DEVICE_RATE, 5.0 + k * 0.02)
    policy = HalfDuplex(reference)
    assert policy.on_speech(4.9) is Verdict.INTERRUPT  # before it spoke
    assert policy.on_speech(5.1) is Verdict.IGNORE
    assert policy.on_speech(5.5) is Verdict.IGNORE  # the room still rings
    assert policy.on_speech(7.0) is Verdict.INTERRUPT


def test_the_mode_says_what_it_does_about_its_echo(monkeypatch):
    class Speaker(FileSink):
        reference = None  # a sink in a room: the mode hands it a reference

    config = AssistantConfig()
    both = echo_setup(config, Speaker())
    assert both.description == "echo cancellation on (WebRTC AEC3, Speex for the words)"
    assert both.canceller.name == "WebRTC AEC3" and both.words.name == "Speex"
    config.audio.echo_canceller = "webrtc"
    assert echo_setup(config, Speaker()).description == "echo cancellation on (WebRTC AEC3)"
    assert echo_setup(config, FileSink()).policy.name == "immediate"  # a file is in no room
    monitor = type("Monitor", (), {"hears_own_output": True})()
    looped = echo_setup(config, Speaker(), monitor)  # what the computer plays, itself too
    assert looped.policy.name == "half duplex" and looped.canceller is None
    config.audio.echo = "off"
    assert echo_setup(config, Speaker()).description == "echo handling off (headphones)"
    config.audio.echo, config.audio.echo_canceller = "cancel", "auto"
    monkeypatch.setattr(backends.speex, "available", lambda: "no libspeexdsp here")
    assert echo_setup(config, Speaker()).description == "echo cancellation on (WebRTC AEC3)"
    monkeypatch.setattr(backends.webrtc, "available", lambda: "no wheel here")
    fallback = echo_setup(config, Speaker())
    assert not fallback.cancelling and fallback.description.startswith("half duplex")


class _Audible(WordsFirst):
    """WordsFirst, told by the test when the assistant's voice is in the room."""

    audible_now = False

    def audible(self, at: float) -> bool:
        return self.audible_now


@pytest.mark.parametrize(
    "heard, interrupts", [(("tell", "me", "more"), True), (("it", "is", "noon"), False)]
)
def test_speech_over_the_reply_interrupts_only_with_the_users_words(monkeypatch, heard, interrupts):
    policy = _Audible()
    monkeypatch.setattr(
        "assistant.pipeline.modes.assistant.echo_setup",
        lambda config, sink: EchoSetup(policy, "test"),
    )
    chat = FakeChat(hold_after=4)  # "It is noon." is playing
    engines = Engines(FakeRecognizer(words=heard), chat, FakeVoice())
    mic = ScriptedMicrophone()
    assistant = Assistant(AssistantConfig(), engines, mic, FileSink(RATE), vad=energy_vad)
    cancelled: list[TurnCancelled] = []
    played = threading.Event()  # what its echo would say has reached the speaker

    def follow(event) -> None:
        if isinstance(event, TurnCancelled):
            cancelled.append(event)
        elif isinstance(event, PhrasePlaying):
            played.set()

    assistant.subscribe(follow)
    assistant.start()
    try:
        turn = assistant.ask("Say something")
        assert chat.holding.wait(5) and played.wait(5)  # mid-reply: the assistant is talking
        policy.audible_now = True
        mic.say(tone(0.8), silence(1.0))  # speech over it: its words are checked
        assert mic.wait_drained(10)
        if interrupts:
            assert chat.replies.get(timeout=5) == ("It is noon. The", True)
            assert [(e.turn, e.reason) for e in cancelled] == [(turn, "barge-in")]
        else:
            chat.release.set()
            text, was_cancelled = chat.replies.get(timeout=5)
            assert not was_cancelled and text == chat.script
            assert cancelled == [] and chat.questions == ["Say something"]
    finally:
        chat.release.set()
        assert assistant.shutdown() == []


class PacedMicrophone(ScriptedMicrophone):
    """Hands out a block per 32 ms of audio, stamped with when its last sample was
    captured, as a device does (the scripted one hands it out as fast as it is read)."""

    def start(self) -> None:
        super().start()
        self._t0, self._read = time.monotonic(), 0

    def read(self, timeout: float):
        self._read += BLOCK
        due = self._t0 + self._read / RATE
        if self._closed.wait(max(0.0, due - time.monotonic())):
            return None
        block = super().read(timeout)
        return None if block is None else AudioBlock(block.samples, due)


class _EchoThenUser(_Audible):
    """Its first check's probes hear the echo, every later probe the user."""

    onset_after_s: float | None = None  # the level's voice onset, this far into a check

    def __init__(self) -> None:
        super().__init__()
        self.judged: list[float] = []  # where each probe's audio starts
        self.onsets: list[float] = []

    def judge(self, heard: str, start: float, end: float) -> bool:
        self.judged.append(start)
        return len(self.judged) > len(self.probes_s)

    def voice_onset(self, start: float, end: float) -> float | None:
        if self.onset_after_s is not None:
            self.onsets.append(start + self.onset_after_s)
        return self.onsets[-1] if self.onsets else None


def _mid_reply(monkeypatch, policy, mic, words, hold_after=4, follow=None):
    """An assistant asked "Say something", holding its reply after ``hold_after`` words,
    its voice audible to ``policy`` from now on; returns it, its chat and the turn."""
    monkeypatch.setattr(
        "assistant.pipeline.modes.assistant.echo_setup",
        lambda config, sink: EchoSetup(policy, "test"),
    )
    chat = FakeChat(hold_after=hold_after)
    engines = Engines(FakeRecognizer(words=words), chat, FakeVoice())
    assistant = Assistant(AssistantConfig(), engines, mic, FileSink(RATE), vad=energy_vad)
    if follow is not None:
        assistant.subscribe(follow)
    assistant.start()
    turn = assistant.ask("Say something")
    if not chat.holding.wait(5):
        chat.release.set()
        assistant.shutdown()
        raise AssertionError("the reply never started")
    policy.audible_now = True
    return assistant, chat, turn


def test_speech_going_on_after_its_echo_was_heard_is_checked_again(monkeypatch):
    """The voice detector stays on across the echo and then the user (a canceller still
    learning the room): once a check has heard only the echo, what follows is checked
    afresh instead of being ignored with it."""
    policy, cancelled = _EchoThenUser(), []
    mic = PacedMicrophone()  # probes run after seconds of speech: audio time must pass
    assistant, chat, turn = _mid_reply(
        monkeypatch, policy, mic, ("tell", "me", "more"),
        follow=lambda e: cancelled.append(e) if isinstance(e, TurnCancelled) else None,
    )  # fmt: skip
    try:
        mic.say(tone(4.0), silence(1.0))  # no pause between the echo and the user
        assert mic.wait_drained(10)
        assert chat.replies.get(timeout=5)[1] is True  # interrupted
        assert [(e.turn, e.reason) for e in cancelled] == [(turn, "barge-in")]
        first_check, second_check = policy.judged[0], policy.judged[len(policy.probes_s)]
        assert second_check > first_check  # its audio starts after the echo's
    finally:
        chat.release.set()
        assert assistant.shutdown() == []


def test_a_question_begun_inside_its_echo_keeps_its_first_words(monkeypatch):
    """The user starts talking while the echo still holds the voice detector on (the
    session's first reply, a canceller still learning the room): the probes of that
    "utterance" hear mostly echo, but its level shows where a voice stood out from it.
    The audio from there goes in front of the check that follows, so the question keeps
    its first words."""
    policy = _EchoThenUser()
    policy.onset_after_s = 0.8  # into the first check, the level says a voice began
    mic = PacedMicrophone()
    words = tuple(f"w{i}" for i in range(40))
    assistant, chat, _ = _mid_reply(monkeypatch, policy, mic, words)
    try:
        mic.say(tone(4.0), silence(1.0))
        assert mic.wait_drained(10)
        assert chat.replies.get(timeout=5)[1] is True  # interrupted
        onset = policy.onsets[0]
        second_start = policy.judged[len(policy.probes_s)]
        # the second check hears from just before the voice began, not from its own start
        assert onset - 0.4 < second_start < onset, (second_start, onset)
        policy.audible_now = False
        chat.release.set()
        assert chat.replies.get(timeout=5)[1] is False  # the question is answered
        # a word per 0.25 s: the question holds the speech from the onset on
        after_onset_s = 4.0 - (onset - policy.judged[0])
        assert len(chat.questions[-1].split()) >= round(after_onset_s / 0.25) - 1, chat.questions
    finally:
        chat.release.set()
        assert assistant.shutdown() == []


def test_a_pause_inside_a_question_over_the_reply_keeps_its_start(monkeypatch):
    """The first words alone read as echo (one word); the rest, after a pause, shows it was
    the user: the turn holds both parts."""
    policy, mic = _Audible(), ScriptedMicrophone()
    words = ("tell", "me", "more", "about", "that", "now")
    assistant, chat, _ = _mid_reply(monkeypatch, policy, mic, words, hold_after=3)
    try:
        mic.say(tone(0.3), silence(0.8), tone(0.8), silence(1.0))
        assert mic.wait_drained(10)
        assert chat.replies.get(timeout=5) == ("It is noon.", True)  # interrupted
        policy.audible_now = False
        chat.release.set()
        assert chat.replies.get(timeout=5)[1] is False  # the new question is answered
        # 1.15 s of speech in all (a word per 0.25 s); the second part alone would be 3 words
        assert chat.questions[-1] == "Tell me more about that?"
    finally:
        chat.release.set()
        assert assistant.shutdown() == []


class _Closer(_Audible):
    """Its level says a voice may be starting over the reply at the first window the
    voice detector calls speech (only); it records how the reply is ducked, and when."""

    def __init__(self) -> None:
        self.ducks: list[tuple[bool, float]] = []
        super().__init__(duck=lambda down: self.ducks.append((down, time.monotonic())))
        self.asked: list[float] = []
        self.judged: list[float] = []

    def may_be_voice(self, start: float, end: float) -> bool:
        self.asked.append(end)
        return len(self.asked) == 1

    user = False  # what every probe is judged to be

    def judge(self, heard: str, start: float, end: float) -> bool:
        self.judged.append(time.monotonic())
        return self.user


def _uninterrupted_over(monkeypatch, *audio: np.ndarray) -> _Closer:
    """Plays ``audio`` over a reply whose every probe hears the echo; returns the policy
    once the reply has finished, uninterrupted."""
    policy, mic = _Closer(), PacedMicrophone()
    assistant, chat, _ = _mid_reply(monkeypatch, policy, mic, ("tell", "me", "more"))
    try:
        mic.say(*audio)
        assert mic.wait_drained(10)
        chat.release.set()
        assert chat.replies.get(timeout=5) == (chat.script, False)
    finally:
        chat.release.set()
        assert assistant.shutdown() == []
    return policy


def test_a_blip_over_the_reply_makes_room_for_a_moment_only(monkeypatch):
    """A voice the detector hears for a moment only (under ``min_speech_ms``), as when
    the canceller takes it out again: the reply is ducked at its first window and comes
    back a second later, with no check."""
    policy = _uninterrupted_over(monkeypatch, tone(0.1), silence(1.5))
    assert [down for down, _ in policy.ducks] == [True, False]
    # about a second of audio (wall clock: the stage may lag the microphone on a busy box)
    assert 0.5 < policy.ducks[1][1] - policy.ducks[0][1] < 2.5, policy.ducks
    assert policy.judged == []


def test_the_room_made_for_a_voice_lasts_until_its_check_is_done(monkeypatch):
    """The voice goes on to be confirmed: its check keeps the reply ducked until its
    probes are judged (echo here), not just for the moment the room was made for."""
    policy = _uninterrupted_over(monkeypatch, tone(2.0), silence(1.5))
    assert policy.ducks[0][0] is True and policy.ducks[-1][0] is False, policy.ducks
    back = next(at for down, at in policy.ducks if not down)
    assert len(policy.judged) >= 2 and back >= policy.judged[1], (policy.ducks, policy.judged)


def test_a_question_whose_start_only_the_level_heard_keeps_it(monkeypatch):
    """Its first word, heard for a moment and lost (the canceller took it out), made
    the reply make room; the check that follows once speech is confirmed hears from
    there, past the detector's own pre-roll."""
    policy, mic = _Closer(), PacedMicrophone()
    policy.user = True
    words = tuple(f"w{i}" for i in range(20))
    assistant, chat, _ = _mid_reply(monkeypatch, policy, mic, words)
    try:
        mic.say(tone(0.15), silence(0.6), tone(1.0), silence(1.0))  # pre-roll: 0.5 s
        assert mic.wait_drained(10)
        assert chat.replies.get(timeout=5)[1] is True  # interrupted
        policy.audible_now = False
        chat.release.set()
        assert chat.replies.get(timeout=5)[1] is False  # the question is answered
        # a word per 0.25 s of speech: 1.15 s with its first word, 1.0 s without
        assert len(chat.questions[-1].split()) == 5, chat.questions
    finally:
        chat.release.set()
        assert assistant.shutdown() == []


def test_headphones_are_told_from_loudspeakers():
    from assistant.echo.presence import EchoPresence

    rng = np.random.default_rng(3)
    far = [rng.normal(0, 0.1, 160).astype(np.float32) for _ in range(120)]
    headphones, speakers = EchoPresence(), EchoPresence()
    for i, frame in enumerate(far):
        headphones.observe(rng.normal(0, 1e-4, 160).astype(np.float32), frame)
        speakers.observe(0.3 * far[i - 3] if i >= 3 else frame * 0, frame)
        if i < 40:  # too little playback heard to believe there is no echo
            assert headphones.present
    assert not headphones.present and speakers.present
    for frame in far:  # the headphones come off: the speaker is heard again
        headphones.observe(0.5 * frame, frame)
    assert headphones.present
