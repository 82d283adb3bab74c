"""``chat`` on recordings that are not one short question, and progress on a terminal.

The whole input is one question (push-to-talk semantics: a pause inside it does not end
the turn), answered once; a recording longer than Whisper's 30 s window is refused
before any model loads, pointing at ``transcribe``.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_env import speak

import assistant.commands.chat as chat
from assistant.audio import read_audio
from assistant.cli import main
from assistant.config import AssistantConfig
from assistant.errors import AudioInputError
from assistant.progress import ProgressLine, clock

REPO = Path(__file__).resolve().parent.parent
RATE = 16000

SENTENCES = [
    "I would like to tell you about my day.",
    "In the morning I walked the dog around the park.",
    "Then I met a friend for lunch and we talked about music.",
    "In the afternoon I fixed a difficult bug at work.",
    "In the evening I cooked dinner with fresh vegetables.",
]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), np.float32)


def trim(audio: np.ndarray) -> np.ndarray:
    """Without the synthesiser's own leading and trailing silence."""
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1]


def write(path: Path, audio: np.ndarray) -> Path:
    soundfile.write(path, audio, RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def sentences(speech_dir) -> list[np.ndarray]:
    return [read_audio(speak(t, speech_dir / f"day-{i}.wav")) for i, t in enumerate(SENTENCES)]


@pytest.fixture(scope="module")
def long_talk(sentences, speech_dir) -> Path:
    """Several sentences with pauses between them: well over a minute of talk."""
    parts = [part for s in sentences * 3 for part in (s, silence(1.5))]
    path = write(speech_dir / "long-talk.wav", np.concatenate(parts))
    assert soundfile.info(path).duration > 45
    return path


def test_a_long_recording_is_refused_in_one_line_before_any_model_loads(
    long_talk, tmp_path, capsys, monkeypatch
):
    """Unmarked, so the guard in conftest.py fails it if any model loads."""

    def no_engines(config):
        raise AssertionError("chat loaded the engines for a recording it must refuse")

    monkeypatch.setattr(chat, "load_engines", no_engines)
    keep = write(tmp_path / "reply.wav", 0.1 * np.ones(RATE // 2, np.float32))
    before = keep.read_bytes()
    assert main(["chat", "--input", str(long_talk), "--output", str(keep)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    minutes = clock(soundfile.info(long_talk).duration)
    assert lines[0].startswith(f"voice-assistant: error: {long_talk} is {minutes} long"), lines
    assert "one spoken question of up to 30 s (Whisper hears 30 s at a time)" in lines[0]
    assert lines[0].endswith(f"use 'voice-assistant transcribe {long_talk}'"), lines
    assert keep.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["reply.wav"]  # no temporary left behind


def test_quiet_before_and_after_the_question_does_not_count(sentences):
    """20 s of room hiss either side of a short question: not refused, and the hiss is
    not fed (chat would otherwise pace it at real time)."""
    question = trim(sentences[0])
    hiss = 0.0003 * np.random.default_rng(1).standard_normal(RATE * 20)  # about -70 dBFS
    audio = np.concatenate([hiss, question, hiss[::-1]]).astype(np.float32)
    assert audio.size / RATE > chat.MAX_QUESTION_S
    fed = chat.question_audio("q.wav", audio, RATE, AssistantConfig())
    edges = 2 * chat.EDGE_MS / 1000
    assert question.size / RATE <= fed.size / RATE <= question.size / RATE + edges + 0.01
    assert np.abs(fed).max() == np.abs(question).max()  # all of the speech is in it


def test_sound_up_to_the_limit_is_kept_whole_and_over_it_refused():
    """Amplitude decides what is sound, so a buzz stands in for speech here."""
    buzz = lambda seconds: 0.1 * (-1.0) ** np.arange(int(RATE * seconds))  # noqa: E731
    config = AssistantConfig()
    block = RATE * chat.BLOCK_MS // 1000
    room = int(chat.MAX_QUESTION_S * RATE) - block  # the utterance holds whole blocks
    sound = buzz(chat.MAX_QUESTION_S - 0.2)
    fed = chat.question_audio(
        "q.wav", np.concatenate([silence(1), sound, silence(1)]), RATE, config
    )
    assert fed.size == room  # the quiet edges gave way so that it fits Whisper's window
    assert np.count_nonzero(np.abs(fed) > 0.05) == sound.size  # and all of the sound is in
    with pytest.raises(AudioInputError, match=r"up to 30 s \(Whisper hears 30 s at a time\)"):
        chat.question_audio("q.wav", buzz(30.5), RATE, config)
    config.vad.max_utterance_s = 5.0  # a shorter cut, set by the user, is the limit
    with pytest.raises(AudioInputError, match=r"up to 5 s \(vad\.max_utterance_s\)"):
        chat.question_audio("q.wav", buzz(8), RATE, config)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_redraws_in_place_on_a_terminal_and_is_cleared():
    stream = FakeTerminal()
    with ProgressLine(stream) as line:
        line.update("hearing 1 s / 30 s")
        line.update("hearing 1 s / 30 s")  # unchanged: not drawn again
        line.update("hearing 12 s / 30 s")
        line.update("answering")  # shorter: blanks what the longer line left
    assert stream.getvalue() == (
        "\rhearing 1 s / 30 s"
        "\rhearing 12 s / 30 s"
        "\ranswering          "
        "\r         \r"  # blanked at the end (the padding is blank already)
    )


@pytest.mark.parametrize("stream", [io.StringIO(), object()], ids=["file", "no-isatty"])
def test_the_progress_line_writes_nothing_off_a_terminal(stream):
    line = ProgressLine(stream)
    line.update("transcribing 0:00 / 10:00 (0%)")
    line.done()
    assert not line.enabled
    if isinstance(stream, io.StringIO):
        assert stream.getvalue() == ""


def test_clock():
    assert [clock(s) for s in (0, 29.6, 75.4, 600, 3725)] == [
        "0:00",
        "0:30",
        "1:15",
        "10:00",
        "1:02:05",
    ]


@pytest.fixture(scope="module")
def paused_question(speech_dir) -> Path:
    """ "What is the capital" ... 1.5 s ... "of France?": the pause would end a hands-free
    turn (end_silence_ms is 600), so a pipeline splitting at it answers twice."""
    first = trim(read_audio(speak("What is the capital", speech_dir / "cap-1.wav")))
    second = trim(read_audio(speak("of France?", speech_dir / "cap-2.wav")))
    audio = np.concatenate([silence(0.3), first, silence(1.5), second, silence(0.5)])
    assert AssistantConfig().vad.end_silence_ms < 1500
    return write(speech_dir / "paused-question.wav", audio)


def test_a_pause_inside_the_question_gives_one_answered_turn(
    engines, paused_question, tmp_path, capsys, monkeypatch
):
    """One turn through the live pipeline: both halves in its transcript, one question in
    the chat model's memory, the reply written. On a terminal, stderr shows how much has
    been heard, then clears the line; stdout is only the JSON."""
    monkeypatch.setattr(chat, "load_engines", lambda config: engines)
    engines.chat.conversation.clear()
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    reply = tmp_path / "reply.wav"
    assert main(["chat", "--input", str(paused_question), "--output", str(reply), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # the whole of stdout is one JSON object
    assert re.search(r"capital", data["transcript"], re.I), data
    assert re.search(r"france|friends", data["transcript"], re.I), data
    users = [t["content"] for t in engines.chat.conversation.turns if t["role"] == "user"]
    assert users == [data["transcript"]], users
    assert data["reply"].strip()
    for key in ("endpoint", "asr", "llm_first_token", "tts_first_audio", "voice_to_voice"):
        assert isinstance(data["timings_ms"][key], float), data["timings_ms"]
    audio, rate = soundfile.read(reply)
    assert audio.size / rate > 0.5 and np.abs(audio).max() > 0.05
    total = chat.question_audio("q", read_audio(paused_question), RATE, AssistantConfig()).size
    shown = terminal.getvalue()
    for heard in (0, 2):
        assert f"\rhearing {heard} s / {total / RATE:.0f} s" in shown, shown
    assert shown.endswith("\r") and shown.rsplit("\r", 2)[1].strip() == "", shown


@pytest.mark.parametrize("kind", ["blip", "noise"])
def test_a_blip_or_noise_is_no_speech_and_keeps_the_output(
    engines, kind, tmp_path, capsys, monkeypatch
):
    """0.05 s of sound, or 3 s of loud noise: one line "no speech heard", exit 2, and the
    existing output untouched. Off a terminal, stderr holds nothing but that line."""
    monkeypatch.setattr(chat, "load_engines", lambda config: engines)
    rng = np.random.default_rng(7)
    seconds = 0.05 if kind == "blip" else 3.0
    audio = (0.08 * rng.standard_normal(int(RATE * seconds))).astype(np.float32)
    heard = write(tmp_path / f"{kind}.wav", audio)
    keep = write(tmp_path / "keep.wav", 0.1 * np.ones(RATE // 2, np.float32))
    before = keep.read_bytes()
    assert main(["chat", "--input", str(heard), "--output", str(keep)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"voice-assistant: error: no speech heard in {heard}\n"
    assert captured.out == ""
    assert keep.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([heard.name, "keep.wav"])


def transcribe(path: Path, *, stderr_on_terminal: bool) -> tuple[str, str]:
    """``voice-assistant transcribe`` in a subprocess: (stdout, stderr). With
    ``stderr_on_terminal`` its stderr is a pty; stdout is always a pipe."""
    command = [sys.executable, "-m", "assistant", "transcribe", str(path), "--language", "en"]
    if not stderr_on_terminal:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout, result.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    shown = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            shown += chunk
        out = proc.stdout.read().decode()
        assert proc.wait(timeout=300) == 0, shown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
    return out, shown.decode()


@pytest.mark.slow
def test_transcribe_shows_progress_only_on_a_terminal(long_talk):
    out, err = transcribe(long_talk, stderr_on_terminal=False)
    assert "\r" not in err and "transcribing" not in err, err
    assert out.count("\n") == 1 and re.search(r"dog.*lunch.*vegetables", out), out
    tty_out, shown = transcribe(long_talk, stderr_on_terminal=True)
    assert tty_out == out  # the transcript on stdout is the same either way
    total = clock(soundfile.info(long_talk).duration)
    assert f"\rtranscribing 0:00 / {total} (0%)" in shown, shown
    percents = [int(p) for p in re.findall(r"\((\d+)%\)", shown)]
    assert len(percents) > 3 and percents == sorted(percents) and percents[-1] >= 90, shown
    assert shown.endswith("\r") and shown.rsplit("\r", 2)[1].strip() == "", shown
