"""The turn logic with fake engines, in milliseconds: speculation confirmed and dropped,
barge-in, Stop, push-to-talk, barge-in off, a pause mid-question, a failing stage."""

from __future__ import annotations

import pytest
from fake_engines import FakeChat, ScriptedMicrophone, energy_vad, fake_engines, silence, tone
from live_helpers import EventLog

from assistant.audio.sinks import FileSink
from assistant.config import AssistantConfig
from assistant.events import (
    AudioFinished,
    AudioStarted,
    ErrorOccurred,
    FinalTranscript,
    ReplyFinished,
    ReplyToken,
    SpeechStarted,
    State,
    StateChanged,
    TurnCancelled,
)
from assistant.pipeline import Assistant
from assistant.pipeline.turn_state import TurnState

WAIT = 5.0  # generous: each of these takes milliseconds


class Run:
    def __init__(self, config: AssistantConfig | None = None, chat: FakeChat | None = None):
        self.config = config or AssistantConfig()
        self.engines = fake_engines(chat)
        self.chat = self.engines.chat
        self.mic = ScriptedMicrophone()
        self.sink = FileSink(sample_rate=16000)
        self.log = EventLog()
        self.assistant = Assistant(self.config, self.engines, self.mic, self.sink, vad=energy_vad)
        self.assistant.subscribe(self.log)

    def __enter__(self) -> Run:
        self.assistant.start()
        return self

    def __exit__(self, *exc) -> None:
        assert self.assistant.shutdown(timeout=WAIT) == []

    def answered(self, turn: int | None = None) -> AudioFinished:
        return self.log.wait_for(
            AudioFinished, lambda e: turn is None or e.turn == turn, timeout=WAIT
        )


def test_a_question_is_answered_and_played():
    with Run() as run:
        run.mic.say(tone(1.0), silence(0.8))
        done = run.answered()
        assert not done.interrupted
        heard = run.log.of(FinalTranscript)
        assert [e.text for e in heard] == ["What is the time?"]
        assert run.chat.questions == ["What is the time?"]
        reply = run.log.of(ReplyFinished)[0]
        assert reply.text == run.chat.script and not reply.cancelled
        assert run.sink.audio.size > 0
        run.log.wait_for(StateChanged, lambda e: e.state == State.LISTENING, after=1)


def test_a_speculative_reply_waits_for_the_end_of_the_turn():
    """After a short pause the reply is prepared, but nothing shows or plays until the
    silence confirms that the user has finished."""
    config = AssistantConfig()
    config.vad.finished_silence_ms = 0  # always the full end silence
    with Run(config) as run:
        run.mic.say(tone(1.0), silence(0.2))  # a pause, shorter than the end silence
        assert run.chat.replies.get(timeout=WAIT) == (run.chat.script, False)  # prepared
        assert run.log.of(FinalTranscript) == [] and run.log.of(ReplyToken) == []
        assert run.sink.audio.size == 0, "a speculative reply played before the turn ended"
        run.mic.say(silence(0.6))
        run.answered()
        assert [e.text for e in run.log.of(FinalTranscript)] == ["What is the time?"]
        assert run.chat.questions == ["What is the time?"]  # the prepared reply was used
        assert run.sink.audio.size > 0


def test_speaking_on_after_a_pause_drops_the_speculative_reply():
    config = AssistantConfig()
    config.vad.finished_silence_ms = 0
    with Run(config) as run:
        run.mic.say(tone(0.5), silence(0.2))
        first, _ = run.chat.replies.get(timeout=WAIT)  # the pause's reply, never shown
        run.mic.say(tone(1.0), silence(0.8))  # the user was not finished
        run.answered()
        assert [e.text for e in run.log.of(FinalTranscript)] == ["What is the time now please?"]
        assert run.chat.questions == ["What is?", "What is the time now please?"]
        # The dropped exchange is gone from the memory; only the real one is kept.
        assert [t["content"] for t in run.chat.conversation.turns if t["role"] == "user"] == [
            "What is the time now please?"
        ]
        assert len(run.log.of(ReplyFinished)) == 1


def test_speech_over_a_reply_interrupts_it_and_is_answered():
    chat = FakeChat(hold_after=4)
    with Run(chat=chat) as run:
        run.mic.say(tone(1.0), silence(0.8))
        assert chat.holding.wait(WAIT)
        run.log.wait_for(AudioStarted, timeout=WAIT)  # the first phrase plays
        run.mic.say(tone(0.5), silence(0.8))  # barge-in
        cancelled = run.log.wait_for(TurnCancelled, timeout=WAIT)
        assert cancelled.reason == "barge-in" and cancelled.turn == 1
        assert run.log.wait_for(AudioFinished, lambda e: e.turn == 1, timeout=WAIT).interrupted
        text, was_cancelled = chat.replies.get(timeout=WAIT)
        assert was_cancelled and text == "It is noon. The"  # remembered as far as heard
        chat.release.set()
        run.answered(turn=2)
        assert chat.questions[-1] == "What is?"
        assert chat.conversation.turns[1]["content"] == "It is noon. The"


def test_stop_drops_the_reply_at_once():
    chat = FakeChat(hold_after=3)
    with Run(chat=chat) as run:
        turn = run.assistant.ask("Tell me a story.")
        assert chat.holding.wait(WAIT)
        run.assistant.stop_speaking()
        assert run.log.wait_for(TurnCancelled, timeout=WAIT).reason == "stop"
        assert chat.replies.get(timeout=WAIT)[1] is True
        assert run.log.of(ReplyFinished, turn) == []
        assert not run.assistant.busy


def test_push_to_talk_hears_only_while_held():
    config = AssistantConfig()
    config.vad.mode = "push-to-talk"
    with Run(config) as run:
        run.mic.say(tone(1.0), silence(0.8))  # not held: ignored
        assert run.mic.wait_drained(WAIT)  # all of it captured before the press
        run.assistant.push_to_talk(True)
        run.mic.say(tone(0.5))
        run.log.wait_for(SpeechStarted, timeout=WAIT)
        run.assistant.push_to_talk(False)
        run.mic.say(silence(0.1))
        run.answered()
        assert len(run.log.of(SpeechStarted)) == 1
        assert [e.text for e in run.log.of(FinalTranscript)] == ["What is?"]


def test_with_barge_in_off_speech_during_a_reply_is_ignored():
    config = AssistantConfig()
    config.vad.barge_in = False
    chat = FakeChat(hold_after=4)
    with Run(config, chat) as run:
        run.mic.say(tone(1.0), silence(0.8))
        assert chat.holding.wait(WAIT)
        run.mic.say(tone(0.5), silence(0.8))  # talked over: dropped whole
        run.mic.say(silence(0.1))
        chat.release.set()
        run.answered(turn=1)
        assert run.log.of(TurnCancelled) == []
        assert chat.questions == ["What is the time?"]


@pytest.mark.parametrize(("words", "ends"), [(("Stop", "now."), True), (("And", "then"), False)])
def test_a_finished_sentence_ends_the_turn_sooner(words, ends):
    """A pause after words that read as a whole sentence ends the turn after the short
    silence; after words that do not, the full end silence is still needed."""
    config = AssistantConfig()
    config.vad.finished_silence_ms, config.vad.end_silence_ms = 200, 1500
    with Run(config) as run:
        run.engines.recognizer.words, run.engines.recognizer.ending = words, ""
        run.mic.say(tone(0.5), silence(0.6))  # more than 200 ms, less than 1500
        assert run.chat.replies.get(timeout=WAIT)[0] == run.chat.script  # speculative
        if not ends:
            assert run.mic.wait_drained(WAIT)
            with pytest.raises(AssertionError):  # still waiting for the end silence
                run.log.wait_for(FinalTranscript, timeout=0.3)
        run.answered()
        assert [e.text for e in run.log.of(FinalTranscript)] == [" ".join(words).capitalize()]


def test_a_failing_reply_ends_the_turn_with_one_line():
    class Broken(FakeChat):
        def reply(self, user_text, on_text, cancelled=lambda: False):
            from assistant.errors import LlmError

            raise LlmError("the server at http://127.0.0.1:9/v1 is not answering")

    with Run(chat=Broken()) as run:
        turn = run.assistant.ask("Hello?")
        error = run.log.wait_for(ErrorOccurred, timeout=WAIT)
        assert error.stage == "llm" and error.message.startswith("the server at")
        run.log.wait_for(ReplyFinished, lambda e: e.turn == turn, timeout=WAIT)
        run.log.wait_for(
            StateChanged, lambda e: e.turn == turn and e.state == State.LISTENING, timeout=WAIT
        )
        again = run.assistant.ask("Again?")  # the pipeline still takes turns
        assert run.log.wait_for(ErrorOccurred, lambda e: e.turn == again, timeout=WAIT)


def test_turn_state_transitions():
    turns = TurnState()
    cleared = []
    turns.on_new_attempt(lambda: cleared.append(turns.current))
    first, cancelled = turns.new_turn()
    assert cancelled.turn is None and cleared == [first]
    paused = turns.paused()
    assert paused == first
    event = object()
    assert not turns.admit(paused, event, False)  # held while speculative
    retry = turns.resumed()
    assert retry is not None and retry.turn == first.turn and retry != first
    assert turns.resumed() is None  # nothing speculating any more
    ticket, needs_transcript = turns.speech_ended()
    assert ticket == retry and needs_transcript
    assert turns.confirm(retry) == []  # the dropped attempt's held event is gone
    assert turns.busy and turns.admit(retry, event, False)
    turns.replied(first)
    assert turns.take_dropped_reply() and not turns.take_dropped_reply()
    turns.started_playing(retry)
    second, cancelled = turns.new_turn()
    assert cancelled.turn == first.turn and cancelled.audible
    assert not turns.is_current(retry) and not turns.busy
    assert turns.confirm(retry) is None  # stale
    turns.stop()
    assert not turns.wait_confirmed(second)


def test_one_config_reaches_the_loaded_engines():
    """The config an Assistant runs with is the one its engines read; a setting that
    only acts while loading must match what was loaded."""
    from assistant.errors import ConfigError

    engines = fake_engines()
    engines.config = AssistantConfig()
    config = AssistantConfig()
    config.llm.system_prompt, config.llm.max_new_tokens = "Be brief.", 12
    Assistant(config, engines, ScriptedMicrophone(), FileSink(sample_rate=16000), vad=energy_vad)
    assert engines.chat.config is config.llm and engines.recognizer.config is config.asr
    assert engines.chat.conversation.system_prompt == "Be brief."
    other = AssistantConfig()
    other.llm.model = "/models/another.gguf"
    with pytest.raises(ConfigError, match=r"llm\.model = '/models/another.gguf' differs"):
        engines.adopt(other)
