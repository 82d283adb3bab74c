"""``voice-assistant interpret FILE``: recordings translated with the real models, the
subtitles and JSON it writes, and the bad inputs it refuses.

Test speech comes from espeak-ng. Whisper base hears its English well and its French and
German only roughly (docs/performance.md), so the French case checks the path and the
words Whisper does hear; the translators' quality is measured on text in
tests/test_translator_llm.py and in ``make bench``.
"""

from __future__ import annotations

import json
import re
import wave

import jiwer
import numpy as np
import pytest
import srt
import webvtt
from audio_env import speak

from assistant import cli
from assistant.interpret.languages import has_cjk

ENGLISH = ["I would like to book a room for two nights.", "Breakfast is served at eight."]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["interpret", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def english(tmp_path_factory):
    """Two English sentences with a second of silence between them, and its duration."""
    folder = tmp_path_factory.mktemp("interpret")
    parts = [speak(text, folder / f"en{i}.wav") for i, text in enumerate(ENGLISH)]
    frames = []
    for part in parts:
        with wave.open(str(part), "rb") as w:
            frames.append(np.frombuffer(w.readframes(w.getnframes()), "<i2"))
    gap = np.zeros(16000, "<i2")
    joined = np.concatenate([frames[0], gap, frames[1], gap // 2])
    path = folder / "english.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(joined.tobytes())
    return path, joined.size / 16000


@pytest.mark.slow
def test_english_to_french_json_and_subtitles(english, tmp_path, capsys):
    path, duration = english
    srt_path, vtt_path = tmp_path / "out.srt", tmp_path / "out.vtt"
    code, out, err = run(
        capsys, str(path), "--to", "fr", "--engine", "llm", "--json",
        "--srt", str(srt_path), "--vtt", str(vtt_path),
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert (data["language"], data["target"]) == ("en", "fr")
    assert set(data["timings_ms"]) >= {"asr", "translation", "total"}
    segments = data["segments"]
    assert len(segments) == 2, segments
    heard = " ".join(s["text"] for s in segments)
    assert jiwer.wer(" ".join(ENGLISH).lower(), heard.lower().replace("8", "eight")) < 0.25
    # French for the booking (Whisper may hear "two heights", Gemma then has "étages")
    assert re.search(r"réserv|chambre|nuit", segments[0]["translation"], re.I), segments[0]
    for seg in segments:
        assert 0 <= seg["start"] < seg["end"] <= duration + 0.05
    assert segments[0]["end"] <= segments[1]["start"]
    # the second sentence starts after the pause (espeak's first sentence, then 1 s)
    assert segments[1]["start"] >= segments[0]["end"] - 0.05

    cues = list(srt.parse(srt_path.read_text(encoding="utf-8")))
    vtt = list(webvtt.read(str(vtt_path)))
    assert len(cues) == len(vtt) == 2
    for cue, caption, seg in zip(cues, vtt, segments, strict=True):
        assert abs(cue.start.total_seconds() - seg["start"]) < 0.002
        assert abs(cue.end.total_seconds() - seg["end"]) < 0.002
        assert abs(caption.start_in_seconds - seg["start"]) < 0.002
        assert cue.content.splitlines() == [seg["text"], seg["translation"]]
        assert caption.text.splitlines() == [seg["text"], seg["translation"]]


@pytest.mark.slow
def test_english_to_chinese_is_written_in_chinese_without_spaces(english, capsys):
    path, _ = english
    code, out, err = run(capsys, str(path), "--to", "zh", "--engine", "llm", "--json")
    assert code == 0, err
    translations = [s["translation"] for s in json.loads(out)["segments"]]
    assert translations and all(has_cjk(t) for t in translations), translations
    assert not any(re.search(r"[\u4e00-\u9fff] [\u4e00-\u9fff]", t) for t in translations)


@pytest.mark.slow
def test_french_to_english_with_whisper_translate(tmp_path, capsys):
    """Whisper base hears espeak-ng's French only roughly and translates short French
    clips loosely, so what is checked is the path: a French caption, and a translation
    in English that is not the French again."""
    path = speak(
        "Bonjour, comment allez-vous aujourd'hui ? Je voudrais un café, s'il vous plaît.",
        tmp_path / "fr.wav",
        "fr+m3",
        espeak_options=("-s", "120", "-g", "3"),
    )
    code, out, err = run(
        capsys, str(path), "--to", "en", "--from", "fr", "--engine", "whisper", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert (data["language"], data["target"]) == ("fr", "en")
    assert data["segments"], data
    for seg in data["segments"]:
        source, translation = seg["text"], seg["translation"]
        assert translation and translation.isascii() and translation != source, seg


@pytest.mark.slow
def test_silence_gives_no_segments_and_says_why(tmp_path, capsys):
    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.zeros(48000, "<i2").tobytes())
    code, out, err = run(capsys, str(path), "--to", "fr", "--json")
    assert code == 0
    assert json.loads(out)["segments"] == []
    assert "no speech heard" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.wav", "--to", "en"], "audio file not found"),
        (["x.wav", "--to", "xx"], "interpret.target = 'xx'"),
        (["x.wav", "--to", "fr", "--engine", "whisper"], "English only"),
        (["x.wav", "--to", "en", "--engine", "mt"], "interpret.mt_model"),
        (["x.wav", "--to", "en", "--from", "klingon"], "interpret.source"),
        (["x.wav", "--live", "--to", "en"], "not both"),
        (["--to", "en"], "a recording (FILE) or --live"),
        (["x.wav", "--to", "en", "--srt", "out.txtx"], "extension"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert out == ""
