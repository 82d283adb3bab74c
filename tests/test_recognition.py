"""Test 1: the default Whisper gives back sentences spoken by two different synthesizers."""

from __future__ import annotations

import re

import jiwer
import numpy as np
import pytest
from audio_env import speak

from assistant.audio import read_audio

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please turn off the lights in the kitchen.",
    "How far away is the moon from the earth?",
]


def wer(reference: str, hypothesis: str) -> float:
    clean = lambda t: " ".join(re.sub(r"[^a-z0-9' ]+", " ", t.lower()).split())  # noqa: E731
    return jiwer.wer(clean(reference), clean(hypothesis))


@pytest.mark.parametrize("engine", ["espeak-ng", "flite"])
def test_default_whisper_transcribes_synthetic_speech(engines, speech_dir, engine):
    heard = []
    for i, sentence in enumerate(SENTENCES):
        audio = read_audio(speak(sentence, speech_dir / f"{engine}-{i}.wav", engine=engine))
        result = engines.recognizer.transcribe(audio)
        assert result.language == "en"
        heard.append(result.text)
    # Word error rate over the whole set: synthetic voices slur single words now and then.
    assert wer(" ".join(SENTENCES), " ".join(heard)) <= 0.2, heard


def test_fixed_language_and_translation(engines, speech_dir):
    sentence = "Bonjour, je voudrais un café, s'il vous plaît."
    audio = read_audio(speak(sentence, speech_dir / "fr.wav", voice="fr"))
    french = engines.recognizer.transcribe(audio, language="fr")
    assert french.language == "fr"
    assert "bonjour" in french.text.lower() and "café" in french.text.lower(), french.text
    english = engines.recognizer.transcribe(audio, language="fr", task="translate")
    assert "coffee" in english.text.lower(), english.text


@pytest.mark.parametrize(
    "kind", ["silence", "white-noise", "loud-noise", "brown-noise", "mains-hum"]
)
def test_no_text_from_silence_or_noise(engines, kind):
    rng = np.random.default_rng(7)
    n = 16000 * 4
    audio = {
        "silence": np.zeros(n),
        "white-noise": 0.05 * rng.standard_normal(n),
        "loud-noise": 0.5 * rng.standard_normal(n),
        "brown-noise": np.cumsum(rng.standard_normal(n)) * 0.002,
        "mains-hum": 0.3 * np.sin(2 * np.pi * 50 * np.arange(n) / 16000),
    }[kind]
    result = engines.recognizer.transcribe(np.clip(audio, -1, 1).astype(np.float32))
    assert result.text == ""
