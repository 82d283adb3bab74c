"""The interpreter's stages on stand-in engines (no model loaded): stable captions,
segments, translation with context, the engine choice, the echo guard."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from fake_engines import BLOCK, RATE, FakeVoice, ScriptedMicrophone, energy_vad, silence, tone
from live_helpers import EventLog

from assistant.asr import Abandoned, Transcript
from assistant.audio.sinks import FileSink
from assistant.audio.sources import FileSource
from assistant.commands.interpret import CaptionPrinter
from assistant.config import AssistantConfig
from assistant.events import (
    ErrorOccurred,
    SegmentTimings,
    SourceCaption,
    TranslatedCaption,
)
from assistant.interpret.agreement import LocalAgreement
from assistant.interpret.echo_guard import EchoGuard
from assistant.interpret.engines import InterpreterEngines
from assistant.interpret.languages import join_units, units
from assistant.interpret.translators.auto import AutoTranslator
from assistant.interpret.translators.base import Translator
from assistant.pipeline.handlers.speaking import sentences
from assistant.pipeline.modes.interpreter import Interpreter
from assistant.tts.voices import Voice

# -- local agreement ------------------------------------------------------------------


def test_confirmed_words_are_those_two_decodes_agree_on():
    agreement = LocalAgreement()
    assert agreement.update("I would").confirmed == ""
    assert agreement.update("I would like a").confirmed == "I would"
    caption = agreement.update("I would like to book")
    assert (caption.confirmed, caption.tentative) == ("I would like", "to book")
    assert agreement.final("I would like to book a room.") == "I would like to book a room."


def test_confirmed_text_never_changes_whatever_the_decodes_say():
    rng = random.Random(7)
    sentence = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "the",
        "lazy",
        "dog",
        "near",
        "the",
        "old",
        "river",
        "bank",
    ]
    agreement = LocalAgreement()
    confirmed = ""
    for n in range(1, len(sentence) + 1):
        words = sentence[:n]
        if rng.random() < 0.5:  # a decode that rewrites one of the words heard so far
            words = list(words)
            words[rng.randrange(n)] = rng.choice(["fax", "jump", "a", "lady"])
        caption = agreement.update(" ".join(words))
        assert caption.confirmed.startswith(confirmed)
        confirmed = caption.confirmed
    final = agreement.final(" ".join(sentence))
    assert final.startswith(confirmed)
    assert len(confirmed.split()) >= 5  # it did confirm, despite the noise


def test_case_and_punctuation_do_not_block_agreement():
    agreement = LocalAgreement()
    agreement.update("hello world how")
    assert agreement.update("Hello, world. How are").confirmed == "Hello, world. How"


def test_chinese_is_confirmed_character_by_character_without_spaces():
    agreement = LocalAgreement()
    agreement.update("今天天")
    caption = agreement.update("今天天气很")
    assert caption.confirmed == "今天天"
    assert caption.tentative == "气很"
    assert agreement.final("今天天气很好。") == "今天天气很好。"
    assert units("我用 Python 写。") == ["我", "用", "Python", "写。"]
    assert join_units(["Hello,", "world."]) == "Hello, world."


def test_sentences_split_at_full_width_marks():
    assert sentences("今天天气很好。我们去公园吧！好吗？") == [
        "今天天气很好。",
        "我们去公园吧！",
        "好吗？",
    ]
    assert sentences("It is late. We should go home now, before the rain starts.") == [
        "It is late.",
        "We should go home now, before the rain starts.",
    ]


# -- the engine choice and the echo guard ---------------------------------------------


class Named(Translator):
    def __init__(self, name, pairs):
        self.name, self.pairs = name, pairs

    def supports(self, source, target):
        return (source, target) in self.pairs or ("*", target) in self.pairs

    def translate(self, segment, target, context=(), cancelled=lambda: False):
        return f"{self.name}:{segment.text}"

    def describe(self):
        return self.name


def test_auto_takes_mt_then_trusted_llm_then_whisper_then_any_llm():
    mt = Named("mt", {("de", "en")})
    llm = Named("llm", {("fr", "en"), ("de", "en"), ("en", "zh"), ("ja", "en")})
    whisper = Named("whisper", {("*", "en")})
    auto = AutoTranslator(mt=mt, llm=llm, whisper=whisper, trusted=frozenset({("fr", "en")}))
    assert auto.choose("de", "en") is mt
    assert auto.choose("fr", "en") is llm
    assert auto.choose("ja", "en") is whisper  # the LLM takes it, but is not trusted there
    assert auto.choose("en", "zh") is llm  # nobody else can
    assert auto.choose("en", "ko") is None
    from assistant.errors import ConfigError
    from assistant.interpret.translators.base import SourceSegment

    with pytest.raises(ConfigError, match="English into Korean"):
        auto.translate(SourceSegment("hi", "en"), "ko")


def test_echo_guard_drops_what_was_just_spoken_and_keeps_new_words():
    guard = EchoGuard()
    guard.spoken("I would like to book a room for two nights.", at=100.0)
    assert guard.is_echo("book a room for two nights", 101.0, 102.0)
    assert not guard.is_echo("where is the station please", 101.0, 102.0)
    assert not guard.is_echo("book a room for two nights", 98.0, 99.0)  # before it played
    assert not guard.is_echo("book a room for two nights", 199.0, 200.0)  # long after


# -- the pipeline on stand-in engines -------------------------------------------------


class ScriptedRecognizer:
    """Reads one word per 0.25 s of tone; the latest word of a partial is misheard."""

    words = [
        "je",
        "voudrais",
        "une",
        "chambre",
        "pour",
        "deux",
        "nuits",
        "merci",
        "beaucoup",
        "madame",
    ]

    def __init__(self):
        self.calls = 0

    def transcribe(self, audio, *, language=None, task=None, abandoned=None, speech_known=False):
        self.calls += 1
        voiced = sum(energy_vad(audio[i : i + BLOCK]) for i in range(0, audio.size, BLOCK))
        n = round(voiced * BLOCK / RATE / 0.25)
        if abandoned is not None and abandoned():
            raise Abandoned
        words = list(self.words[:n])
        if words and abandoned is not None:  # a partial decode: its last word is unsure
            words[-1] = words[-1][::-1]
        return Transcript(" ".join(words), "fr", 0.99)


class Dictionary(Translator):
    name = "dict"

    def __init__(self, fail_on="", nothing_for=""):
        self.contexts = []
        self.fail_on = fail_on
        self.nothing_for = nothing_for  # a segment it has no translation for

    def supports(self, source, target):
        return True

    def translate(self, segment, target, context=(), cancelled=lambda: False):
        self.contexts.append([c.text for c in context])
        if self.fail_on and self.fail_on in segment.text:
            from assistant.errors import LlmError

            raise LlmError("the translator broke")
        if self.nothing_for and self.nothing_for in segment.text:
            return ""
        return f"EN({segment.text})"

    def describe(self):
        return "a dictionary"


def start_interpreter(translator, *pieces, speak=True, paced=False, **settings):
    config = AssistantConfig()
    config.interpret.target = settings.pop("target", "en")
    config.interpret.speak = speak
    for key, value in settings.items():
        setattr(config.interpret, key, value)
    voice = Voice(FakeVoice(), "en", "a test tone", False)
    engines = InterpreterEngines(ScriptedRecognizer(), translator, voice)
    # paced: at the speed of speech, as a microphone, so that partial decodes keep up
    mic = FileSource(audio=np.concatenate(pieces)) if paced else ScriptedMicrophone()
    sink, log = FileSink(16000), EventLog()
    interpreter = Interpreter(config, engines, mic, sink, vad=energy_vad)
    interpreter.subscribe(log)
    interpreter.start()
    if not paced:
        mic.say(*pieces)
    return interpreter, log, sink, mic


@pytest.fixture
def interpreting():
    started = []

    def run(*args, **kwargs):
        interpreter, log, sink, mic = start_interpreter(*args, **kwargs)
        started.append(interpreter)
        if isinstance(mic, ScriptedMicrophone):
            assert mic.wait_drained(30)
        return interpreter, log, sink, mic

    yield run
    for interpreter in started:
        assert interpreter.shutdown() == []


def test_segments_close_at_pauses_with_their_times_and_translations(interpreting):
    translator = Dictionary()
    interpreter, log, sink, mic = interpreting(
        translator, silence(1.0), tone(1.5), silence(1.0), tone(1.0), silence(1.0)
    )
    second = log.wait_for(TranslatedCaption, lambda e: e.segment == 2, timeout=20)
    first = log.of(TranslatedCaption)[0]
    assert first.source == "je voudrais une chambre pour deux"
    assert first.text == f"EN({first.source})"
    assert second.source == "je voudrais une chambre"
    # times count samples: the first tone starts 1.0 s in (less the VAD's pre-roll)
    assert 0.6 <= first.start <= 1.05 and 2.4 <= first.end <= 2.8
    assert 3.3 <= second.start <= 3.6
    assert translator.contexts == [[], [first.source]]  # the segment before, as context
    segments = interpreter.record.segments()
    assert [s.translation for s in segments] == [first.text, second.text]
    timings = log.wait_for(SegmentTimings, lambda e: e.segment == 2, timeout=20)
    assert set(timings.timings_ms) == {"caption", "translation", "speech"}
    assert sink.audio.size > 0  # the translations were spoken


def test_partial_captions_only_grow_their_confirmed_words(interpreting):
    interpreter, log, sink, mic = interpreting(Dictionary(), tone(2.5), silence(1.0), paced=True)
    log.wait_for(SourceCaption, lambda e: e.final, timeout=20)
    captions = [e for e in log.of(SourceCaption) if e.segment == 1]
    assert len(captions) >= 3  # partials every half second, then the final one
    confirmed = [c.confirmed for c in captions]
    for before, after in zip(confirmed, confirmed[1:], strict=False):
        assert after.startswith(before)
    assert any(c.tentative for c in captions[:-1])  # the unsure last word was shown apart
    assert captions[-1].final and captions[-1].confirmed.startswith("je voudrais")


def test_a_speaker_who_never_pauses_is_cut_at_the_length_cap(interpreting):
    interpreter, log, sink, mic = interpreting(
        Dictionary(), tone(5.0), silence(1.0), speak=False, max_segment_s=2.0
    )
    log.wait_for(TranslatedCaption, lambda e: e.segment >= 2, timeout=20)
    finals = [e for e in log.of(SourceCaption) if e.final]
    assert all(e.end - e.start <= 2.05 for e in finals)
    assert not log.of(SegmentTimings) or all(
        "speech" not in e.timings_ms for e in log.of(SegmentTimings)
    )
    assert sink.audio.size == 0  # captions only


def test_a_failed_translation_is_one_error_and_the_next_segment_goes_on(interpreting):
    translator = Dictionary(fail_on="deux")
    interpreter, log, sink, mic = interpreting(
        translator, tone(1.5), silence(1.0), tone(0.75), silence(1.0), speak=False
    )
    log.wait_for(TranslatedCaption, lambda e: e.segment == 2, timeout=20)
    errors = log.of(ErrorOccurred)
    assert [(e.stage, e.message) for e in errors] == [("translate", "the translator broke")]
    assert [s.translation for s in interpreter.record.segments()] == ["", "EN(je voudrais une)"]


def test_a_segment_left_without_translation_is_said(interpreting):
    translator = Dictionary(nothing_for="deux")
    interpreter, log, sink, mic = interpreting(
        translator, tone(1.5), silence(1.0), tone(0.75), silence(1.0), speak=False
    )
    log.wait_for(TranslatedCaption, lambda e: e.segment == 2, timeout=20)
    (error,) = log.of(ErrorOccurred)
    assert error.stage == "translate" and "no translation for the segment at 0." in error.message
    assert [s.translation for s in interpreter.record.segments()] == ["", "EN(je voudrais une)"]


def test_silence_gives_no_caption(interpreting):
    interpreter, log, sink, mic = interpreting(Dictionary(), silence(3.0))
    assert log.of(SourceCaption) == [] and interpreter.record.segments() == []


def test_captions_only_from_the_next_segment_once_speaking_is_off(interpreting):
    interpreter, log, sink, mic = interpreting(Dictionary(), tone(1.5), silence(1.0))
    log.wait_for(SegmentTimings, lambda e: "speech" in e.timings_ms, timeout=20)
    spoken = sink.audio.size
    assert spoken > 0
    interpreter.set_speak(False)
    mic.say(tone(1.0), silence(1.0))
    log.wait_for(TranslatedCaption, lambda e: e.segment == 2, timeout=20)
    assert sink.audio.size == spoken  # the second translation was shown, not spoken
    assert [bool(s.translation) for s in interpreter.record.segments()] == [True, True]


def test_the_printer_shows_closed_segments_and_translations(capsys):
    printer = CaptionPrinter(terminal=False)
    printer(SourceCaption(1, 1, "Bonjour", "tout", "fr", 0.0, 1.0))
    printer(SourceCaption(1, 1, "Bonjour tout le monde.", "", "fr", 61.5, 63.0, final=True))
    printer(TranslatedCaption(1, 1, "Bonjour tout le monde.", "Hello everyone.", "fr", "en", 0, 1))
    assert capsys.readouterr().out == "[01:01.5] Bonjour tout le monde.\n  → Hello everyone.\n"


def test_concurrent_use_of_one_record_is_safe():
    from assistant.interpret.record import CaptionRecord, CaptionSegment

    record = CaptionRecord()

    def write(base):
        for i in range(200):
            record.add(CaptionSegment(base + i, i, i + 1, "x", "en"))
            record.translated(base + i, "y", "fr")

    threads = [threading.Thread(target=write, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    segments = record.segments()
    assert len(segments) == 800 and all(s.translation == "y" for s in segments)
    assert [s.index for s in segments] == sorted(s.index for s in segments)


def test_a_segment_already_in_the_target_language_is_kept_and_not_spoken(interpreting):
    translator = Dictionary()
    interpreter, log, sink, mic = interpreting(translator, tone(1.0), silence(1.0), target="fr")
    shown = log.wait_for(TranslatedCaption, timeout=20)
    assert shown.text == shown.source == "je voudrais une chambre"
    assert translator.contexts == []  # the translator was not asked
    assert "speech" not in log.wait_for(SegmentTimings, timeout=20).timings_ms
    assert sink.audio.size == 0
