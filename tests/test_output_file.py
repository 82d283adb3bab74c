"""Output audio files: the format from the extension, written whole or not at all."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from assistant.audio.output_file import OutputFile, writable_formats
from assistant.errors import AudioOutputError

TONE = (0.3 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)).astype(np.float32)


@pytest.mark.parametrize("extension", [".wav", ".flac", ".ogg", ".mp3"])
def test_each_format_reads_back_as_the_same_second_of_audio(extension, tmp_path):
    assert extension in writable_formats()
    path = tmp_path / f"tone{extension.upper()}"  # the extension's case does not matter
    OutputFile(path).write(TONE, 22050)
    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == 22050 and abs(audio.size - TONE.size) < 2500  # MP3 pads its frames
    n = min(audio.size, TONE.size)
    level = np.sqrt(np.mean(audio[:n] ** 2))
    assert abs(level - np.sqrt(np.mean(TONE**2))) < 0.03
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "reply.wav"
    soundfile.write(path, TONE, 22050)
    before = path.read_bytes()

    def broken(file, *args, **kwargs):
        with open(file, "wb") as half:
            half.write(b"RIFF....")  # a partial file, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(soundfile, "write", broken)
    with pytest.raises(AudioOutputError, match="No space left on device"):
        OutputFile(path).write(TONE, 22050)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["reply.wav"]


@pytest.mark.parametrize(
    ("name", "message"),
    [("reply", "name the file with one of .wav"), ("reply.aac", r"\.mp3 \(the extension")],
)
def test_a_name_without_a_known_extension_says_which_there_are(name, message, tmp_path):
    with pytest.raises(AudioOutputError, match=message):
        OutputFile(tmp_path / name)


def test_a_folder_or_an_unwritable_place_is_refused_at_once(tmp_path):
    with pytest.raises(AudioOutputError, match="it is a folder"):
        OutputFile(tmp_path)
    with pytest.raises(AudioOutputError, match="cannot write /proc/reply.wav"):
        OutputFile("/proc/reply.wav")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(AudioOutputError, match="cannot write"):
        OutputFile(blocker / "reply.wav")
