"""Frames louder than any echo of what was playing: someone talking over the reply.

The echo is the assistant's voice (espeak-ng) through simulated rooms; the user is
another voice mixed in, as loud as the echo, with the reply ducked once the check
begins as the live pipeline does.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_echo_cancelling import RATE, room, voices  # noqa: F401 (a fixture)

from assistant.audio.blocks import AudioBlock
from assistant.audio.playback_reference import PlaybackReference
from assistant.config import AssistantConfig
from assistant.echo.backends import create_cancellers
from assistant.echo.double_talk import DoubleTalk
from assistant.echo.echo_delay import EchoDelay
from assistant.echo.presence import EchoPresence, frame_db
from assistant.events import PhrasePlaying
from assistant.interpret.echo_guard import EchoGuard
from assistant.pipeline.barge_in import WordsFirst
from assistant.pipeline.handlers.echo_cancelling import EchoCancelling
from assistant.pipeline.stage import StageContext

FRAME = RATE // 100
T0 = 500.0
DUCK = 10 ** (-30 / 20)


def listen(far: np.ndarray, mic: np.ndarray) -> DoubleTalk:
    presence = EchoPresence()
    double_talk = DoubleTalk(presence)
    for k in range(0, mic.size - FRAME + 1, FRAME):
        near, played = mic[k : k + FRAME], far[k : k + FRAME]
        presence.observe(near, played)
        double_talk.observe(near, played, T0 + k / RATE)
    return double_talk


def seconds(samples: int) -> float:
    return T0 + samples / RATE


def windows_maybe_voice(far: np.ndarray, mic: np.ndarray) -> list[float]:
    """Where (seconds into ``mic``) a WordsFirst policy says a voice may be starting,
    asked at every 32 ms voice-detector window as the live pipeline does (the
    detector's own verdict aside)."""
    presence = EchoPresence()
    double_talk = DoubleTalk(presence)
    reference = PlaybackReference(RATE)
    reference.played(far, RATE, T0)
    policy = WordsFirst(reference, lambda down: None, presence, double_talk=double_talk)
    maybe, window = [], 512
    for k in range(0, mic.size - FRAME + 1, FRAME):
        near, played = mic[k : k + FRAME], far[k : k + FRAME]
        presence.observe(near, played)
        double_talk.observe(near, played, seconds(k))
        if (k + FRAME) % window == 0 and policy.may_be_voice(seconds(k - window), seconds(k)):
            maybe.append(k / RATE)
    return maybe


@pytest.mark.parametrize("delay_ms, level_db", [(20, 0), (60, 0), (120, -6), (250, 0), (250, -10)])
def test_the_echo_alone_is_never_louder_than_the_echo(voices, delay_ms, level_db):  # noqa: F811
    far = np.concatenate([voices[0], voices[0]])
    double_talk = listen(far, room(far, delay_ms, level_db))
    assert double_talk.frames_over_echo(seconds(0), seconds(far.size)) == 0


@pytest.mark.parametrize("delay_ms, level_db", [(20, 0), (120, -6), (250, 0)])
def test_a_voice_over_the_reply_is(voices, delay_ms, level_db):  # noqa: F811
    far, user = voices
    far = np.concatenate([far, far])
    at = far.size // 2  # the user speaks over the reply...
    ducked = far.copy()
    ducked[at + RATE // 10 :] *= DUCK  # ...which is ducked once speech is heard over it
    mic = room(ducked, delay_ms, level_db)
    mic[at : at + user.size] += user * 10 ** (level_db / 20)  # as loud as the echo
    double_talk = listen(ducked, mic)
    assert double_talk.frames_over_echo(seconds(at), seconds(at + int(0.6 * RATE))) >= 10
    assert double_talk.frames_over_echo(seconds(0), seconds(at)) == 0
    onset = double_talk.first_over_echo(seconds(0), seconds(at + int(0.6 * RATE)), 2)
    assert onset is not None and seconds(at) <= onset < seconds(at) + 0.3, onset - seconds(at)


def test_nothing_counts_before_the_room_is_known(voices):  # noqa: F811
    far, user = voices
    mic = room(far, 60, 0)
    mic[: user.size] += user  # over the reply's first words: no echo return measured yet
    double_talk = listen(far, mic)
    assert double_talk.frames_over_echo(seconds(0), seconds(int(0.45 * RATE))) == 0


@pytest.mark.parametrize("delay_ms, level_db", [(20, 0), (60, 0), (120, -6)])
def test_a_voice_over_the_reply_s_first_words_is_told_once_the_reply_makes_room(
    voices,  # noqa: F811
    delay_ms,
    level_db,
):
    """A question from the first moment of the session's first reply, as loud as its
    echo: the canceller, still learning the room, takes most of it out, so its check
    begins late (here 1.2 s in) and the reply is ducked only from there. What tells the
    voice is its last words, once the reply's echo has died away behind the duck: the
    room's delay places that echo, where the whole path's loudest frame (0.4 s of the
    reply at full level) would hide them."""
    far, user = voices
    ducked = far.copy()
    at = int(1.2 * RATE)
    ducked[at:] *= DUCK
    mic = room(ducked, delay_ms, level_db)
    mic[: user.size] += user * 10 ** (level_db / 20)
    double_talk = listen(ducked, mic)
    assert double_talk.frames_over_echo(seconds(at), seconds(at + int(0.4 * RATE))) >= 5


def delay_found(far: np.ndarray, mic: np.ndarray) -> int | None:
    delay = EchoDelay(max_frames=35)
    for k in range(0, mic.size - FRAME + 1, FRAME):
        delay.observe(frame_db(far[k : k + FRAME]), frame_db(mic[k : k + FRAME]))
    return delay.frames


@pytest.mark.parametrize("delay_ms, level_db", [(20, 0), (60, -10), (120, 0), (250, -10)])
def test_the_room_s_delay_is_told_from_levels(voices, delay_ms, level_db):  # noqa: F811
    far = voices[0]
    assert abs(delay_found(far, room(far, delay_ms, level_db)) - delay_ms / 10) <= 2


def test_no_delay_is_believed_where_the_echo_would_come_first(voices):  # noqa: F811
    """The microphone following what is played 50 ms later: the streams' timings
    disagree (a restarted stream, a device that misreports its latency)."""
    far, user = voices
    ahead = np.concatenate([far[RATE // 20 :], np.zeros(RATE // 20, np.float32)])
    assert delay_found(far, ahead) is None
    assert delay_found(far, np.resize(user, far.size)) is None  # no echo: someone else


@pytest.mark.parametrize("before_ms, after_ms", [(200, 60), (250, 20)])
def test_the_delay_is_learnt_afresh_when_the_microphone_s_times_move(
    voices,  # noqa: F811
    before_ms,
    after_ms,
):
    """Halfway through, the echo reads as arriving sooner (the microphone's anchor was
    found late, or its stream restarted): with the delay learnt before, the echo now
    comes from frames the level test does not allow for, and reads as a voice."""
    far = np.concatenate([voices[0], voices[0]])
    half = far.size // 2
    mic = np.concatenate([room(far, before_ms, 0)[:half], room(far, after_ms, 0)[half:]])

    def frames_over_after_the_move(told: bool) -> int:
        presence = EchoPresence()
        double_talk = DoubleTalk(presence)
        for k in range(0, mic.size - FRAME + 1, FRAME):
            if told and k <= half < k + FRAME:
                double_talk.timing_moved()
            presence.observe(mic[k : k + FRAME], far[k : k + FRAME])
            double_talk.observe(mic[k : k + FRAME], far[k : k + FRAME], seconds(k))
        return double_talk.frames_over_echo(seconds(half), seconds(far.size))

    assert frames_over_after_the_move(told=False) > 0  # the hazard
    assert frames_over_after_the_move(told=True) == 0


def test_the_canceller_stage_tells_when_the_microphone_s_times_move(voices):  # noqa: F811
    """The stream's first blocks arrived 0.1 s late, so its anchor was set late and the
    echo (200 ms) read as 300 ms; a block on time moves the anchor, and every later
    frame's time, 0.1 s earlier: the echo now reads as sooner than the delay learnt,
    which is learnt again."""
    far = np.concatenate([voices[0], voices[0]])
    mic = room(far, 200, 0)
    reference = PlaybackReference(RATE)
    reference.played(far, RATE, T0)
    presence = EchoPresence()
    double_talk = DoubleTalk(presence)
    canceller, _, why = create_cancellers("speex")
    assert canceller is not None, why
    stage = EchoCancelling(
        StageContext(AssistantConfig()), canceller, reference, presence, double_talk=double_talk
    )
    block, on_time = 512, far.size // 2 // 512 * 512
    for i in range(0, mic.size - block + 1, block):
        late = 0.1 if i < on_time else 0.0
        if i == on_time:
            assert abs(double_talk.delay_frames - 30) <= 2
        list(stage.process(AudioBlock(mic[i : i + block], seconds(i + block) + late)))
        if i == on_time:
            assert double_talk.delay_frames is None
    assert abs(double_talk.delay_frames - 20) <= 2


def test_nothing_counts_once_the_reply_has_stopped_playing(voices):  # noqa: F811
    """What the microphone hears once the speaker has been silent for the whole path
    may still be the reply, come later than the path allows (a clean-clone run answered
    its own echo heard as the reply ended): no frame there proves a person talking."""
    far, _ = voices
    silence = np.zeros(2 * RATE, np.float32)
    played = np.concatenate([far, silence])
    mic = room(played, 60, 0)
    late = far[-RATE:] * 0.7  # the last second of the reply again, half a second late
    mic[far.size + RATE // 2 : far.size + RATE // 2 + late.size] += late
    double_talk = listen(played, mic)
    assert double_talk.frames_over_echo(seconds(far.size), seconds(played.size)) == 0


def test_words_over_the_reply_need_a_voice_louder_than_its_echo(voices):  # noqa: F811
    far, user = voices
    far = np.concatenate([far, far])
    at = far.size // 2
    ducked = far.copy()
    ducked[at + RATE // 10 :] *= DUCK
    mic = room(ducked, 60, 0)
    mic[at : at + user.size] += user
    double_talk = listen(ducked, mic)
    policy = WordsFirst(double_talk=double_talk)
    policy.follow(PhrasePlaying(1, "The ocean covers most of our planet.", seconds(0)))
    question = "What is the capital of France?"
    assert policy.judge(question, seconds(at), seconds(at + 2 * RATE))
    # a probe's clip cut within the question: Whisper completes its last word
    assert policy.judge("I'm in the capital of France.", seconds(at), seconds(at + 1.1 * RATE))
    # more words than anyone says in the time: made up from the echo's residue
    invented = "to address the most important issues that we have in the US."
    assert not policy.judge(invented, seconds(at), seconds(at + 2 * RATE))
    # the same words heard in the echo alone (a recogniser's invention) are not the user
    assert not policy.judge(question, seconds(at - 3 * RATE), seconds(at - RATE))


# -- the interpreter: a segment heard while its translation plays ---------------------


def interpreter_guard(played: np.ndarray, mic: np.ndarray) -> EchoGuard:
    """The guard of an interpreter whose speaker played ``played`` from T0 on, with
    ``mic`` what its microphone heard meanwhile."""
    return EchoGuard(listen(played, mic))


@pytest.mark.parametrize("delay_ms, level_db", [(20, 0), (60, 0), (250, -6)])
def test_the_interpreter_drops_its_translation_heard_back_whatever_the_words(
    voices,  # noqa: F811
    delay_ms,
    level_db,
):
    """With the source language fixed, Whisper hears the echo of a French translation
    as English words that share nothing with it: the level tells it is the echo."""
    far, _ = voices
    played = np.concatenate([far, np.zeros(2 * RATE, np.float32)])
    guard = interpreter_guard(played, room(played, delay_ms, level_db))
    guard.spoken("Je voudrais une chambre pour deux nuits.", T0)
    heard = "In the same way, I am in the same level."
    assert guard.is_echo(heard, seconds(RATE), seconds(far.size))
    assert guard.is_echo(heard, seconds(RATE // 5), seconds(RATE))  # a partial caption
    # the same words said once the translation has stopped are someone's
    assert not guard.is_echo(heard, seconds(far.size + RATE), seconds(played.size))


def test_the_interpreter_keeps_a_voice_louder_than_its_echo(voices):  # noqa: F811
    far, user = voices
    played = np.concatenate([far, far])
    at = far.size
    mic = room(played, 60, -6)
    mic[at : at + user.size] += user * 10 ** (12 / 20)  # close to the microphone
    guard = interpreter_guard(played, mic)
    assert not guard.is_echo("What is the capital of France?", seconds(at), seconds(at + user.size))
    assert guard.is_echo("What is the capital of France?", seconds(RATE), seconds(at - RATE))


def test_the_interpreter_keeps_a_voice_that_goes_on_after_its_translation(voices):  # noqa: F811
    """As loud as the echo: what counts is that it goes on once the translation has
    stopped."""
    far, user = voices
    played = np.concatenate([far, np.zeros(3 * RATE, np.float32)])
    at = far.size - user.size // 2  # the second half of the question after the voice
    mic = room(played, 60, 0)
    mic[at : at + user.size] += user
    guard = interpreter_guard(played, mic)
    assert not guard.is_echo(
        "What is the capital of France?", seconds(at + RATE // 5), seconds(at + user.size)
    )


@pytest.mark.parametrize("delay_ms, level_db", [(20, 0), (60, 0), (120, -6)])
def test_a_voice_starting_over_the_reply_is_told_from_its_echo_at_once(
    voices,  # noqa: F811
    delay_ms,
    level_db,
):
    """The canceller may take a voice starting over the reply out with the echo, before
    the voice detector has confirmed it: where the microphone is louder than the echo
    could be, it may be someone (``may_be_voice``), from the voice's first window on.
    The echo alone, once the room is known, never is."""
    far, user = voices
    far = np.concatenate([far, far])
    echo = room(far, delay_ms, level_db)
    assert [at for at in windows_maybe_voice(far, echo) if at > 1.0] == []
    at = far.size // 2
    mic = echo.copy()
    mic[at : at + user.size] += user * 10 ** (level_db / 20)  # as loud as the echo
    maybe = [t for t in windows_maybe_voice(far, mic) if t > 1.0]
    assert maybe and at / RATE <= maybe[0] < at / RATE + 0.1, maybe


def test_a_voice_heard_by_its_level_makes_room_where_its_window_stands_out_less(
    voices,  # noqa: F811
):
    """Someone's first syllable far louder than the echo, the rest of the question as
    loud as it: a window the voice detector calls speech then may be them, though it is
    not itself over the echo by ``voice_over_db``: the level test heard them just before.
    The echo alone never gives the level test such frames."""
    far, user = voices
    far = np.concatenate([far, far])
    echo = room(far, 60, 0)
    at = far.size // 2
    mic = echo.copy()
    mic[at : at + user.size] += user
    mic[at : at + RATE // 10] += user[: RATE // 10] * 10.0  # the first syllable, close by
    presence = EchoPresence()
    double_talk = DoubleTalk(presence)
    reference = PlaybackReference(RATE)
    reference.played(far, RATE, T0)
    policy = WordsFirst(reference, lambda down: None, presence, double_talk=double_talk)
    window, less_over, echo_windows = 512, [], []
    for k in range(0, mic.size - FRAME + 1, FRAME):
        presence.observe(mic[k : k + FRAME], far[k : k + FRAME])
        double_talk.observe(mic[k : k + FRAME], far[k : k + FRAME], seconds(k))
        start, end = seconds(k + FRAME - window), seconds(k + FRAME)
        if (k + FRAME) % window:
            continue
        if RATE <= k < at:
            echo_windows.append(policy.may_be_voice(start, end))
        elif at + RATE // 5 <= k < at + RATE // 2:
            excess = double_talk.excess_db(start, end)
            if excess is not None and excess < policy.voice_over_db:
                less_over.append(policy.may_be_voice(start, end))
    assert not any(echo_windows)
    assert less_over and all(less_over), less_over
