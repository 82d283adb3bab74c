"""The chat model and the reply stream: cancellation, memory budget, speech before the end."""

from __future__ import annotations

import numpy as np
from audio_env import speak

from assistant.audio import read_audio
from assistant.audio.sinks import FileSink
from assistant.audio.sources import FileSource
from assistant.config import AssistantConfig
from assistant.events import (
    AudioStarted,
    FinalTranscript,
    PartialTranscript,
    ReplyFinished,
    ReplyToken,
)
from assistant.pipeline import Assistant
from assistant.pipeline.handlers.recognition import Recognition
from assistant.pipeline.items import Heard
from assistant.pipeline.stage import StageContext
from assistant.session import TurnLog


def test_generation_stops_when_cancelled(engines):
    chat = engines.chat
    chat.conversation.clear()
    pieces = []
    text, cancelled = chat.reply(
        "Tell me a long story about a dragon.", pieces.append, cancelled=lambda: len(pieces) >= 3
    )
    assert cancelled and 3 <= len(pieces) <= 4  # stopped within a token of the request
    assert chat.conversation.turns[-1] == {"role": "assistant", "content": text}
    chat.conversation.clear()


def test_memory_is_trimmed_to_the_token_budget(transformers_chat, monkeypatch):
    chat = transformers_chat
    chat.conversation.clear()
    for i in range(6):
        chat.conversation.add(f"Question number {i} about the weather.", "It is sunny. " * 20)
    monkeypatch.setattr(chat.config, "context_tokens", 300)
    ids = chat.prompt_ids("And tomorrow?")
    assert len(ids) <= 300
    kept = [t["content"] for t in chat.conversation.turns if t["role"] == "user"]
    assert kept and "number 5" in kept[-1] and "number 0" not in " ".join(kept)
    prompt = chat.tokenizer.decode(ids)
    assert chat.config.system_prompt in prompt and "And tomorrow?" in prompt
    chat.conversation.clear()


def test_reply_is_spoken_before_it_has_finished_generating(engines):
    config = AssistantConfig()
    config.llm.system_prompt = "Answer with at least four full sentences."
    config.llm.max_new_tokens = 80
    engines.chat.conversation.clear()
    silence = FileSource(audio=np.zeros(16000, np.float32), realtime=True)
    events = []
    log = TurnLog()
    assistant = Assistant(config, engines, silence, FileSink(sample_rate=22050))
    assistant.subscribe(events.append)
    assistant.subscribe(log)
    saved = engines.chat.conversation.system_prompt
    engines.chat.conversation.system_prompt = config.llm.system_prompt
    try:
        assistant.start()
        turn = assistant.ask("Describe the city of Paris.")
        assert log.wait(lambda lg: turn in lg.turns and lg.turns[turn].outcome, 180)
    finally:
        engines.chat.conversation.system_prompt = saved
        engines.chat.conversation.clear()
        assert assistant.shutdown() == []
    kinds = [type(e) for e in events if e.turn == turn]
    first_audio = kinds.index(AudioStarted)
    finished = kinds.index(ReplyFinished)
    tokens_after_audio = kinds[first_audio:finished].count(ReplyToken)
    assert first_audio < finished and tokens_after_audio >= 5, "speech must start mid-reply"


def test_partial_transcripts_arrive_while_the_user_speaks(engines, speech_dir):
    audio = read_audio(
        speak(
            "I would like to know how far away the moon is from the earth, and how long it "
            "takes to fly there.",
            speech_dir / "partials.wav",
        )
    )
    config = AssistantConfig()
    config.llm.max_new_tokens = 8
    events = []
    log = TurnLog()
    source = FileSource(audio=audio, realtime=True)
    assistant = Assistant(config, engines, source, FileSink(sample_rate=22050), partial_every_s=1.0)
    assistant.subscribe(events.append)
    assistant.subscribe(log)
    assistant.start()
    try:
        assert log.wait(lambda lg: any(r.outcome for r in lg.turns.values()), 180)
    finally:
        assert assistant.shutdown() == []
    partials = [e for e in events if isinstance(e, PartialTranscript)]
    final = next(i for i, e in enumerate(events) if isinstance(e, FinalTranscript))
    assert partials and events.index(partials[0]) < final
    final_words = events[final].text.lower()
    assert partials[0].text.split()[0].lower().strip(",.") in final_words
    assert "moon" in final_words


def test_a_partial_transcript_gives_way_to_the_final_one(engines, speech_dir):
    audio = read_audio(speak("How far away is the moon from the earth?", speech_dir / "gw.wav"))
    ctx = StageContext(AssistantConfig())
    events = []
    ctx.subscribe(events.append)
    recognition = Recognition(ctx, engines.recognizer)
    ticket = ctx.new_turn("test")
    engines.recognizer.model._last = None
    assert list(recognition.process(Heard(ticket, audio, final=False))) == []
    assert [e.text for e in events if isinstance(e, PartialTranscript)], events  # nothing queued
    events.clear()
    engines.recognizer.model._last = None
    recognition.waiting = lambda: True  # speech ended meanwhile: the final audio is queued
    assert list(recognition.process(Heard(ticket, audio, final=False))) == []
    assert events == []
    assert engines.recognizer.model._last is None, "the encoder ran for a dropped caption"
