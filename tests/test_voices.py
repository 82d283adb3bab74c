"""Spoken translations in a voice for the target language (assistant/tts/voices.py): Piper for
English, espeak-ng as the last resort for the rest, and espeak-ng's engine itself
(assistant/tts/espeak_engine.py) on real, odd and hostile text."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.resample import resample
from assistant.config import TtsConfig
from assistant.errors import ConfigError, ModelError
from assistant.model_store import ModelStore
from assistant.tts import voices
from assistant.tts.espeak_engine import EspeakEngine
from assistant.tts.piper_engine import PiperEngine
from assistant.tts.voices import voice_for_language

FRENCH = "Bonjour, je voudrais un café, s'il vous plaît."
ENGLISH = "The train to London leaves tomorrow morning at nine."
CHINESE = "你好，我想要一杯咖啡。"
# Whisper base hears espeak's English at 175 wpm imperfectly ("The train to London leaves
# tomorrow" came back "The train turned the fleet to Maro"); this one it hears whole.
QUESTION = "What time does the meeting start on Monday?"


def speak(engine, text: str) -> np.ndarray:
    chunks = list(engine.synthesize(text))
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def voiced_seconds(audio: np.ndarray, rate: int, threshold: float = 0.02) -> float:
    """Seconds of 20 ms frames louder than ``threshold`` (RMS)."""
    frame = rate // 50
    frames = audio[: audio.size // frame * frame].reshape(-1, frame)
    return float((np.sqrt((frames**2).mean(axis=1)) > threshold).sum() * 0.02)


@pytest.mark.parametrize(
    ("language", "text", "units"),
    [("fr", FRENCH, len(FRENCH.split())), ("en", ENGLISH, 10), ("zh", CHINESE, 10)],
)
def test_espeak_speaks_the_language(language, text, units):
    engine = EspeakEngine(language)
    assert engine.sample_rate == 22050
    started = time.monotonic()
    audio = speak(engine, text)
    took = time.monotonic() - started
    seconds = audio.size / engine.sample_rate
    # 0.15-0.8 s per word (per syllable in Chinese) at espeak's 175 wpm
    assert 0.15 * units <= seconds <= 0.8 * units + 1.0, seconds
    assert np.sqrt(np.mean(audio**2)) > 0.02
    assert voiced_seconds(audio, engine.sample_rate) > 0.4 * seconds
    assert np.abs(audio).max() <= 1.0
    assert took < 2.0, f"{took:.2f} s to synthesise {seconds:.1f} s"


def test_espeak_streams_a_long_text_in_pieces():
    engine = EspeakEngine("en")
    pieces = engine.synthesize("This sentence is spoken again and again. " * 30)
    started = time.monotonic()
    first = next(pieces)
    first_after = time.monotonic() - started
    rest = list(pieces)
    assert first.size < engine.sample_rate  # a piece, not the whole minute of speech
    assert len(rest) > 20 and sum(p.size for p in rest) > 60 * engine.sample_rate
    assert first_after < 0.5


def test_speed_follows_the_setting():
    slow = speak(EspeakEngine("fr", TtsConfig(speed=0.7)), FRENCH)
    fast = speak(EspeakEngine("fr", TtsConfig(speed=1.5)), FRENCH)
    assert fast.size < 0.65 * slow.size, (fast.size, slow.size)


@pytest.mark.parametrize("text", ["", "   \n\t", "\x00", ".,;!?", "…", "[[]]", "   ...   ", "----"])
def test_espeak_takes_empty_and_punctuation_only_text(text):
    audio = speak(EspeakEngine("en"), text)
    assert audio.size < 22050  # at most a short pause, never an error


def test_shell_metacharacters_are_read_as_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    canary = tmp_path / "canary"
    canary.write_text("still here")
    hostile = (
        f"$(rm -f {canary}) `rm -f {canary}`; rm -f {canary} && echo \"quoted\" 'single' "
        "| cat > pwned -v xx --help [[h@'l@U]] <speak>tag</speak> %s %n \\ \n-w out.wav"
    )
    audio = speak(EspeakEngine("en"), hostile)
    assert canary.read_text() == "still here"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out.wav").exists()
    assert audio.size > 22050 * 3  # the words were read aloud


def test_a_very_long_text_is_spoken_whole():
    text = ("The quick brown fox jumps over the lazy dog. " * 120)[:5000]
    assert len(text) == 5000
    engine = EspeakEngine("en")
    audio = speak(engine, text)
    # ~900 words at 175 wpm: about five minutes
    assert 200 <= audio.size / engine.sample_rate <= 500


def test_a_dropped_stream_ends_its_espeak_process():
    engine = EspeakEngine("en")
    pieces = engine.synthesize("Stop me soon please. " * 200)
    next(pieces)
    frame = pieces.gi_frame
    proc = frame.f_locals["proc"]
    pieces.close()  # a barge-in drops the rest of the phrase
    assert proc.poll() is not None


def test_espeak_missing_is_one_line_saying_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ModelError) as caught:
        EspeakEngine("fr")
    message = str(caught.value)
    assert "\n" not in message and "espeak-ng" in message and "apt install espeak-ng" in message
    with pytest.raises(ModelError):  # the router says the same for a language Piper lacks
        voice_for_language("fr", TtsConfig(), ModelStore())


@pytest.mark.parametrize("language", ["jw", "xx", "tlh", "../en", "en; rm", "-v"])
def test_a_language_espeak_has_no_voice_for(language):
    with pytest.raises(ConfigError) as caught:
        EspeakEngine(language)
    assert "\n" not in str(caught.value) and repr(language) in str(caught.value)


@pytest.mark.parametrize(
    ("language", "name", "described"),
    [("fr", "fr-fr", "French"), ("zh", "cmn", "Chinese (Mandarin)"), ("de", "de", "German"),
     ("no", "nb", "Norwegian"), ("yue", "yue", "Cantonese"), ("ja", "ja", "Japanese")],
)  # fmt: skip
def test_other_languages_get_the_last_resort_voice(language, name, described):
    voice = voice_for_language(language, TtsConfig(), ModelStore())
    assert isinstance(voice.engine, EspeakEngine) and voice.engine.voice.name == name
    assert voice.last_resort and voice.language == language
    assert voice.description.startswith("espeak-ng") and described in voice.description
    assert "last-resort" in voice.description


def piper_voice_file(folder: Path, code: str, espeak: str, dataset: str) -> Path:
    model = folder / f"{code}-{dataset}-low.onnx"
    model.write_bytes(b"not loaded in this test")
    meta = {
        "audio": {"sample_rate": 16000, "quality": "low"},
        "espeak": {"voice": espeak},
        "language": {"code": code, "family": code.split("_")[0]},
        "dataset": dataset,
    }
    Path(f"{model}.json").write_text(json.dumps(meta))
    return model


@pytest.fixture
def made_engines(monkeypatch) -> list[TtsConfig]:
    """Piper engines the router makes, recorded instead of loaded."""
    made: list[TtsConfig] = []

    def make(config, store):
        made.append(config)
        return f"piper:{config.voice}"

    monkeypatch.setattr(voices, "create_engine", make)
    return made


def test_the_configured_piper_voice_is_used_for_its_own_language(tmp_path, made_engines):
    french = piper_voice_file(tmp_path, "fr_FR", "fr", "siwis")
    config = TtsConfig(voice=str(french))
    voice = voice_for_language("fr", config, ModelStore())
    assert voice.engine == f"piper:{french}" and not voice.last_resort
    assert voice.description == "Piper fr_FR siwis (low)"
    # ... reused when the caller has it loaded already
    assert voice_for_language("fr", config, ModelStore(), loaded="mine").engine == "mine"
    # English is then the bundled voice (a French voice cannot read English), Chinese espeak
    english = voice_for_language("en", config, ModelStore())
    assert english.engine == "piper:default" and english.description == "Piper en_US joe (medium)"
    assert voice_for_language("zh", config, ModelStore()).last_resort
    chinese = piper_voice_file(tmp_path, "zh_CN", "cmn", "huayan")
    voice = voice_for_language("zh", TtsConfig(voice=str(chinese)), ModelStore())
    assert voice.engine == f"piper:{chinese}" and voice.description == "Piper zh_CN huayan (low)"
    assert [c.voice for c in made_engines] == [str(french), "default", str(chinese)]


def test_a_missing_configured_voice_is_reported(tmp_path):
    with pytest.raises(ModelError, match="Piper voice file missing"):
        voice_for_language("fr", TtsConfig(voice=str(tmp_path / "gone.onnx")), ModelStore())


@pytest.mark.slow
def test_english_is_the_bundled_piper_voice(engines):
    voice = voice_for_language("en", TtsConfig(), ModelStore(), loaded=engines.tts)
    assert voice.engine is engines.tts and not voice.last_resort
    assert voice.description == "Piper en_US joe (medium)"
    fresh = voice_for_language("en", TtsConfig(), ModelStore())  # nothing loaded to reuse
    assert isinstance(fresh.engine, PiperEngine) and fresh.engine is not engines.tts
    assert fresh.engine.sample_rate == 22050 and next(fresh.engine.synthesize("Hello.")).size


def heard_words(recognizer, audio: np.ndarray, rate: int, language: str) -> set[str]:
    result = recognizer.transcribe(resample(audio, rate, 16000), language=language)
    return set(re.findall(r"\w+", result.text.lower()))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("language", "text", "key_words"),
    [("fr", FRENCH, {"bonjour", "café", "plaît"}),
     ("en", QUESTION, {"time", "meeting", "start", "monday"})],
)  # fmt: skip
def test_whisper_understands_the_last_resort_voice(engines, language, text, key_words):
    engine = EspeakEngine(language)
    heard = heard_words(engines.recognizer, speak(engine, text), engine.sample_rate, language)
    assert len(heard & key_words) >= len(key_words) - 1, heard
