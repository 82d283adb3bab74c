"""Fast tests of the pieces that need no model."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.config import AssistantConfig, VadConfig
from assistant.errors import ConfigError
from assistant.interpret.export import to_srt, to_vtt
from assistant.interpret.record import CaptionSegment
from assistant.phrases import PhraseSplitter, ends_mid_sentence, speakable
from assistant.pipeline.turns import TurnClock
from assistant.vad import WINDOW, Endpointer, SpeechStart, Utterance


def feed(splitter: PhraseSplitter, text: str, step: int = 3) -> list[str]:
    out = []
    for i in range(0, len(text), step):
        out += splitter.feed(text[i : i + step])
    return out + splitter.flush()


def test_phrases_split_at_sentence_ends_while_streaming():
    phrases = feed(PhraseSplitter(), "Paris is the capital. It is in France! Lovely, isn't it?")
    assert phrases == ["Paris is the capital.", "It is in France!", "Lovely, isn't it?"]


def test_first_clause_goes_early_but_short_clauses_wait():
    splitter = PhraseSplitter(min_chars=20)
    assert splitter.feed("Well, ") == []
    assert splitter.feed("the answer is simple, ") == ["Well, the answer is simple,"]


def test_run_on_text_is_cut_at_a_space():
    phrases = feed(PhraseSplitter(max_chars=40), "word " * 30)
    assert all(len(p) <= 40 for p in phrases)
    assert " ".join(phrases).split() == ["word"] * 30


@pytest.mark.parametrize(
    ("reply", "first"),
    [
        ("There are seven days in a week.", "There are seven days"),  # before "in"
        ("The sky is blue because of the air.", "The sky is blue"),  # before "because"
        ("Sure, octopuses have three hearts.", "Sure,"),  # any clause break
        ("The capital of France is Paris.", "The capital of France is Paris."),  # "of" too soon
        (
            "Octopuses really do have three hearts and blue blood.",
            "Octopuses really do have three hearts",
        ),
        (
            "Try fresh tomatoes garlic basil olive oil pasta salt.",
            "Try fresh tomatoes garlic basil olive oil pasta",
        ),  # the cap
        ("I know.", "I know."),
    ],
)
def test_the_first_phrase_ends_early(reply, first):
    phrases = feed(PhraseSplitter(first_words=8), reply)
    assert phrases[0] == first
    assert " ".join(phrases) == reply  # nothing lost or doubled at the cut
    rest = phrases[1:]
    assert all(p.endswith((".", "?", "!")) for p in rest)  # later phrases: the usual rules


def test_only_the_first_phrase_ends_early():
    phrases = feed(PhraseSplitter(first_words=8), "Cats sleep in the sun. Dogs sleep in the shade.")
    assert phrases == ["Cats sleep in the sun.", "Dogs sleep in the shade."]  # "in" too soon
    assert feed(PhraseSplitter(), "There are seven days in a week.") == [
        "There are seven days in a week."
    ]
    assert ends_mid_sentence("There are seven days")
    assert not any(ends_mid_sentence(p) for p in ("Sure,", "Paris.", "Why?", ""))


def test_speakable_strips_markdown_and_emoji():
    assert speakable("**Bold** and `code` 😀 [link](http://x)") == "Bold and code link"


def test_decimal_numbers_are_not_sentence_ends():
    assert feed(PhraseSplitter(), "Pi is 3.14 roughly.") == ["Pi is 3.14 roughly."]


def windows(prob_pattern: str, config: VadConfig):
    """Run the endpointer over windows whose speech probability the pattern gives."""
    endpointer = Endpointer(config)
    events = []
    for i, mark in enumerate(prob_pattern):
        window = np.full(WINDOW, i, dtype=np.float32)
        events += endpointer.process(window, 0.9 if mark == "#" else 0.0, at=i * 0.032)
    return events


def test_endpointer_keeps_pre_roll_and_ends_after_silence():
    config = VadConfig(min_speech_ms=96, end_silence_ms=320, pre_roll_ms=160)
    events = windows("." * 20 + "#" * 30 + "." * 15, config)
    starts = [e for e in events if isinstance(e, SpeechStart)]
    utterances = [e for e in events if isinstance(e, Utterance)]
    assert len(starts) == 1 and len(utterances) == 1
    first_window = int(utterances[0].audio[0])
    assert first_window <= 20 - 2, "pre-roll must include audio from before speech began"
    assert utterances[0].speech_end_at == pytest.approx(49 * 0.032)
    assert utterances[0].decided_at - utterances[0].speech_end_at >= 0.32 - 1e-6


def test_endpointer_ignores_short_bursts():
    config = VadConfig(min_speech_ms=200)
    events = windows("." * 10 + "##" + "." * 40, config)
    assert events == []


def test_endpointer_push_to_talk_bounds_the_utterance():
    config = VadConfig(mode="push-to-talk", pre_roll_ms=64)
    endpointer = Endpointer(config)
    for i in range(5):
        endpointer.process(np.full(WINDOW, i, np.float32), 0.0, i * 0.032)
    assert isinstance(endpointer.push_to_talk(True, 0.2)[0], SpeechStart)
    for i in range(5, 15):
        endpointer.process(np.full(WINDOW, i, np.float32), 0.9, i * 0.032)
    (utterance,) = endpointer.push_to_talk(False, 0.5)
    values = np.unique(utterance.audio)
    assert values[0] == 3 and values[-1] == 14  # two pre-roll windows, then all it heard


def test_turn_clock_makes_older_turns_and_attempts_stale():
    clock = TurnClock()
    first = clock.begin()
    second = clock.begin()
    assert not clock.is_current(first) and clock.is_current(second)
    retry = clock.retry()
    assert retry.turn == second.turn and not clock.is_current(second) and clock.is_current(retry)


def test_config_rejects_unknown_settings():
    with pytest.raises(ConfigError, match="unknown setting vad.nope"):
        AssistantConfig.from_dict({"vad": {"nope": 1}})
    config = AssistantConfig.from_dict({"vad": {"end_silence_ms": 400}, "asr": {"language": "fr"}})
    assert config.vad.end_silence_ms == 400 and config.asr.language == "fr"


def test_subtitle_formats():
    segments = [
        CaptionSegment(1, 0.0, 1.5, "Hello.", "en"),
        CaptionSegment(2, 61.25, 3725.0, "Bye.", "en"),
    ]
    srt = to_srt(segments, "source")
    assert "1\n00:00:00,000 --> 00:00:01,500\nHello.\n" in srt
    assert "2\n00:01:01,250 --> 01:02:05,000\nBye.\n" in srt
    assert "00:01:01.250 --> 01:02:05.000" in to_vtt(segments, "source")


def test_switching_mode_drops_a_half_heard_utterance():
    config = VadConfig(min_speech_ms=64)
    endpointer = Endpointer(config)
    for i in range(10):
        endpointer.process(np.full(WINDOW, i, np.float32), 0.9, i * 0.032)
    assert endpointer.in_speech
    endpointer.set_mode("push-to-talk")
    assert not endpointer.in_speech and config.mode == "push-to-talk"
    assert endpointer.process(np.zeros(WINDOW, np.float32), 0.9, 1.0) == []


def test_endpointer_pauses_resumes_and_ends_with_the_whole_utterance():
    config = VadConfig(min_speech_ms=96, end_silence_ms=320, speculate_after_ms=96)
    events = windows("." * 5 + "#" * 10 + "." * 5 + "#" * 10 + "." * 12, config)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SpeechStart", "SpeechPaused", "SpeechResumed", "SpeechPaused", "Utterance"]
    last_pause, utterance = events[3], events[4]
    assert np.array_equal(last_pause.audio, utterance.audio), "speculation saw the final audio"
    assert utterance.speech_end_at == last_pause.speech_end_at
    assert 5 in np.unique(utterance.audio) and 29 in np.unique(utterance.audio)


def test_no_partial_audio_while_a_pause_is_being_transcribed():
    # A partial transcript in the pause would take a core from the final one and the reply.
    config = VadConfig(min_speech_ms=96, end_silence_ms=640, speculate_after_ms=64)
    endpointer = Endpointer(config, progress_every_s=0.064)
    kinds = []
    for i, mark in enumerate("#" * 12 + "." * 12 + "#" * 4):
        window = np.zeros(WINDOW, np.float32)
        kinds += [type(e).__name__ for e in endpointer.process(window, 0.9 * (mark == "#"), i)]
    paused, resumed = kinds.index("SpeechPaused"), kinds.index("SpeechResumed")
    assert "SpeechProgress" in kinds[:paused] and "SpeechProgress" in kinds[resumed:]
    assert "SpeechProgress" not in kinds[paused:resumed]


def test_no_speculation_when_turned_off():
    config = VadConfig(min_speech_ms=96, end_silence_ms=320, speculate_after_ms=0)
    kinds = [type(e).__name__ for e in windows("." * 5 + "#" * 10 + "." * 12, config)]
    assert kinds == ["SpeechStart", "Utterance"]


def test_a_finished_sentence_shortens_only_the_current_pause():
    config = VadConfig(min_speech_ms=96, end_silence_ms=640, speculate_after_ms=96)
    endpointer = Endpointer(config)
    ends = []

    def feed(pattern: str, start: int, early_at: int | None = None):
        for i, mark in enumerate(pattern, start):
            if i == early_at:
                endpointer.end_early(192)
            for event in endpointer.process(np.zeros(WINDOW, np.float32), 0.9 * (mark == "#"), i):
                ends.append((type(event).__name__, i))

    # A pause hinted as finished, but the user speaks on: the hint dies with the pause.
    feed("#" * 6 + "." * 4 + "#" * 6 + "." * 24, 0, early_at=9)
    assert ("SpeechResumed", 10) in ends and ("Utterance", 16 + 20 - 1) in ends
    ends.clear()
    # The next turn's pause, hinted after 4 windows: it ends at 6 windows (192 ms).
    feed("#" * 6 + "." * 12, 100, early_at=110)
    assert [e for e in ends if e[0] == "Utterance"] == [("Utterance", 111)]


def test_what_reads_as_a_finished_sentence():
    from assistant.turn_end import reads_finished

    finished = ["What is the capital of France?", "Turn it off.", 'He said "stop!"', "好的。"]
    unfinished = ["I would like to", "Well...", "So, um…", "and then", ""]
    assert all(reads_finished(t) for t in finished)
    assert not any(reads_finished(t) for t in unfinished)


def test_a_replys_quiet_lead_in_is_trimmed():
    from assistant.audio.trim import trim_quiet_start

    rate = 16000
    rng = np.random.default_rng(1)
    hiss = rng.uniform(-0.002, 0.002, rate // 10)  # peaks under -54 dBFS, 100 ms
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(rate // 10) / rate)
    trimmed = trim_quiet_start(np.concatenate([hiss, tone]).astype(np.float32), rate)
    assert abs(trimmed.size - (tone.size + 80)) <= 1  # 5 ms kept before the onset
    quiet = hiss.astype(np.float32)
    assert trim_quiet_start(quiet, rate) is quiet  # nothing loud: keep it all


def test_a_phrase_cut_between_words_loses_its_quiet_ending():
    from assistant.audio.trim import without_quiet_end

    rate = 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(rate // 10) / rate)
    tail = np.zeros(rate // 8)  # 125 ms, like Piper's after a phrase
    loud_end = np.flatnonzero(np.abs(tone) > 10 ** (-50 / 20))[-1] + 1
    audio = np.concatenate([tone, tail, tone, tail]).astype(np.float32)
    whole = np.concatenate(list(without_quiet_end([audio], rate)))
    assert whole.size == tone.size + tail.size + loud_end + 480  # 30 ms kept after the voice
    # In pieces the same samples come out, and the pause between the tones survives;
    # the piece before the pause is passed on at once, not held for the next one.
    pieces = np.array_split(audio, 7)
    streamed = list(without_quiet_end(iter(pieces), rate))
    assert np.array_equal(np.concatenate(streamed), whole)
    assert np.array_equal(streamed[0], pieces[0])
    quiet = tail.astype(np.float32)
    assert np.array_equal(np.concatenate(list(without_quiet_end([quiet], rate))), quiet)


def test_a_decode_that_only_repeats_the_question_keeps_it_once():
    from assistant.asr import said_once

    question = "Tell me a fun fact about the ocean."
    assert said_once(f"{question} {question} Tell me a fun") == question
    assert said_once(f"{question} {question} {question}") == question
    assert said_once("Stop. Stop. Stop. Stop.") == "Stop."
    # Not a loop of whole sentences: left to the filter and the full-window decode.
    assert said_once(question) is None
    assert said_once("the ocean the ocean the ocean") is None
    assert said_once(f"{question} Tell me another one.") is None


def test_a_decode_that_ends_in_a_loop_keeps_the_words_before_it_and_the_phrase_once():
    from assistant.asr import without_loop

    looped = "I'm going to die, come on, come on, come on, come on, come on, come on, come"
    assert without_loop(looped) == "I'm going to die, come on,"
    fool = "I'm not a fool, I'm not a fool, I'm not a fool, I'm not a"
    assert without_loop(fool) == "I'm not a fool,"
    assert without_loop(fool + " fo") == "I'm not a fool,"  # the cap cut a word short
    assert without_loop("No. " * 12) == "No."
    # What people do say: a phrase twice, a short one three times, or no repeat at all.
    assert without_loop("Come on, come on, let's go now, we are going to be late.") is None
    assert without_loop("No, no, no.") is None
    assert without_loop("I'm going to go to the library") is None
    assert without_loop("") is None
