"""The command line: outputs people and scripts rely on, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_env import speak

from assistant.cli import main


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def question(speech_dir):
    return speak("What is the capital of France?", speech_dir / "cli-question.wav")


@pytest.mark.slow
def test_transcribe_json(question):
    result = cli("transcribe", str(question), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["language"] == "en"
    assert "capital" in data["text"].lower()
    assert data["segments"] and data["segments"][0]["end"] > data["segments"][0]["start"]


@pytest.mark.slow
def test_transcribe_srt_and_language(question, capsys):
    assert main(["transcribe", str(question), "--format", "srt", "--language", "en"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1\n00:00:0") and "-->" in out and "capital" in out


@pytest.mark.slow
def test_chat_json_runs_one_full_turn(question, tmp_path):
    reply = tmp_path / "reply.wav"
    result = cli("chat", "--input", str(question), "--output", str(reply), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "capital" in data["transcript"].lower()
    assert data["reply"].strip()
    timings = data["timings_ms"]
    for key in ("endpoint", "asr", "llm_first_token", "tts_first_audio", "voice_to_voice"):
        assert isinstance(timings[key], float) and timings[key] >= 0, (key, timings)
    # The reply plays once the turn is confirmed, and its work starts at the end of speech
    # at the earliest (speculatively, so the endpoint wait overlaps it).
    assert timings["voice_to_voice"] >= timings["endpoint"]
    assert timings["voice_to_voice"] >= timings["asr"] + timings["tts_first_audio"]
    audio, rate = soundfile.read(reply)
    assert audio.size / rate > 0.5 and np.abs(audio).max() > 0.05


@pytest.mark.slow
def test_say_writes_speech(tmp_path, capsys):
    out = tmp_path / "say.wav"
    assert main(["say", "Good morning, how can I help?", "--output", str(out)]) == 0
    audio, rate = soundfile.read(out)
    assert rate == 22050 and 1.0 < audio.size / rate < 5.0


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing.wav", "audio file not found"),
        (lambda d: _write(d / "empty.wav", b""), "audio file is empty"),
        (lambda d: _write(d / "text.wav", b"this is not audio at all" * 50), "cannot decode"),
        (lambda d: _wav(d / "zero.wav", 0), "holds no samples"),
    ],
)
def test_bad_audio_input_is_one_line_and_exit_2(tmp_path, capsys, make_input, message):
    path = make_input(tmp_path)
    for command in (["transcribe", str(path)], ["chat", "--input", str(path), "--output", "o.wav"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unknown_language_code(question, capsys):
    assert main(["transcribe", str(question), "--language", "klingon"]) == 2
    assert "unknown language code 'klingon'" in capsys.readouterr().err


@pytest.mark.slow
def test_chat_on_silence_says_no_speech_and_keeps_the_output_file(tmp_path, capsys):
    silence = _wav(tmp_path / "silence.wav", 16000 * 2)
    keep = _wav(tmp_path / "keep.wav", 16000)  # the user's earlier reply, not to be lost
    before = keep.read_bytes()
    assert main(["chat", "--input", str(silence), "--output", str(keep)]) == 2
    assert "no speech heard" in capsys.readouterr().err
    assert keep.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav", "silence.wav"]


@pytest.mark.parametrize("command", ["chat", "say"])
@pytest.mark.parametrize("name", ["reply", "reply.xyz", "folder", "/proc/reply.wav"])
def test_an_output_that_cannot_work_is_refused_before_any_model_loads(
    command, name, tmp_path, capsys
):
    """Fast: the marker guard in conftest.py fails this test if a model loads."""
    (tmp_path / "folder").mkdir()
    output = name if name.startswith("/") else str(tmp_path / name)
    if command == "chat":
        argv = ["chat", "--input", str(_wav(tmp_path / "q.wav", 16000)), "--output", output]
    else:
        argv = ["say", "Hello", "--output", output]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voice-assistant: error: cannot write"), lines
    if "." not in Path(name).name:
        assert ".wav, .flac, .ogg" in lines[0] or "folder" in lines[0], lines


@pytest.mark.slow
@pytest.mark.parametrize("extension", ["flac", "ogg", "mp3"])
def test_say_writes_the_format_the_extension_names(extension, tmp_path):
    out = tmp_path / f"hi.{extension}"
    assert main(["say", "Good morning, how can I help?", "--output", str(out)]) == 0
    audio, rate = soundfile.read(out)
    assert 1.0 < audio.size / rate < 5.0 and np.abs(audio).max() > 0.05
    assert soundfile.info(out).format == {"flac": "FLAC", "ogg": "OGG", "mp3": "MP3"}[extension]


def test_window_without_display_names_the_headless_commands(monkeypatch):
    env = {k: v for k, v in __import__("os").environ.items()}
    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(key, None)
    result = subprocess.run(
        [sys.executable, "-m", "ui"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no display found" in result.stderr and "voice-assistant listen" in result.stderr


def test_doctor_reports_models_and_devices():
    result = cli("doctor")
    assert "sha256 of 5 packaged file(s)" in result.stdout and "gpu:" in result.stdout
    assert "audio devices" in result.stdout
    # the test server's default sink is app_out: its monitor is what the computer plays
    assert "interpreter: into English" in result.stdout
    assert "system audio input: app_out.monitor" in result.stdout


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _wav(path, samples: int):
    soundfile.write(path, np.zeros(samples, np.float32), 16000)
    return path


def test_global_options_work_before_and_after_the_command():
    from assistant.cli import build_parser

    parse = build_parser().parse_args
    before = parse(["--llm-url", "http://127.0.0.1:8000/v1", "--llm-name", "smol", "chat",
                    "--input", "q.wav", "--output", "r.wav"])  # fmt: skip
    after = parse(["chat", "--input", "q.wav", "--output", "r.wav", "--json",
                   "--llm-url", "http://127.0.0.1:8000/v1", "--llm-name", "smol"])  # fmt: skip
    assert (before.llm_url, before.llm_name) == (after.llm_url, after.llm_name)
    assert after.llm_url == "http://127.0.0.1:8000/v1" and after.json
    mixed = parse(["--device", "cpu", "transcribe", "f.wav", "--llm-path", "stock"])
    assert (mixed.device, mixed.llm_path, mixed.verbose) == ("cpu", "stock", False)
