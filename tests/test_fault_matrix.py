"""What a hostile (or just unlucky) user sees: one table of faults, each row run through the
real command line and checked for what reaches the person at the terminal.

Every row asserts the exit status, the one line on stderr (and no "Traceback" anywhere in
it), and that nothing was lost: an existing ``--output`` file is byte-identical afterwards
and no temporary is left beside it.

Rows that must fail before any model loads run the CLI's ``main`` in a subprocess whose
``ModelStore`` refuses to open (``NO_MODELS``): such a row that reached a model fails at
once, with its own exit status, instead of loading one. Rows that need the models are
marked slow and run ``python -m assistant`` as it is installed. Signals to ``listen``
and rapid barge-ins are in tests/test_fault_signals.py.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_env import speak
from fake_engines import silence, tone

REPO = Path(__file__).resolve().parent.parent
PREFIX = "voice-assistant: error: "
RATE = 16000

# The real CLI, except that opening the model store ends the process with status 99.
NO_MODELS = """
import sys
import assistant.model_store

def refuse(self, *args, **kwargs):
    sys.stderr.write("fault matrix: a model store was opened: this row loads a model\\n")
    sys.stderr.flush()
    raise SystemExit(99)

assistant.model_store.ModelStore.__init__ = refuse
from assistant.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def run_cli(
    args: list[str],
    *,
    models: bool,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    head = ["-m", "assistant"] if models else ["-c", NO_MODELS]
    return subprocess.run(
        [sys.executable, *head, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def one_error_line(result: subprocess.CompletedProcess, status: int = 2) -> str:
    """The one line the user reads, once the status and the rest of stderr are checked."""
    err = result.stderr
    assert "Traceback" not in err, err
    assert result.returncode == status, f"exit {result.returncode}, stderr:\n{err}"
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line on stderr:\n{err}"
    assert err.startswith(PREFIX), err
    return err[len(PREFIX) : -1]


def no_error(result: subprocess.CompletedProcess) -> None:
    err = result.stderr
    assert "Traceback" not in err, err
    assert result.returncode == 0, f"exit {result.returncode}, stderr:\n{err}"
    assert not re.search("error", err, re.I), err


def write_wav(path: Path, samples: np.ndarray) -> Path:
    soundfile.write(path, samples.astype(np.float32), RATE, subtype="PCM_16")
    return path


class Kept:
    """An ``--output`` file from an earlier run, and the folder it is in, as they were."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, 0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE // 10) / RATE))
        self.bytes = path.read_bytes()
        self.listing = sorted(p.name for p in path.parent.iterdir())

    def untouched(self) -> None:
        assert self.path.read_bytes() == self.bytes, f"{self.path} was changed"
        assert sorted(p.name for p in self.path.parent.iterdir()) == self.listing, (
            "files appeared or went in the output's folder"
        )


@dataclasses.dataclass
class Sandbox:
    dir: Path
    question: Path  # a good recording, for the rows where something else is wrong
    kept: Kept
    cache: Path  # the model cache these commands are pointed at: it must stay unmade

    @property
    def env(self) -> dict[str, str]:
        return {"VOICE_ASSISTANT_CACHE_DIR": str(self.cache)}


@pytest.fixture
def sandbox(tmp_path):
    box = Sandbox(
        tmp_path,
        write_wav(tmp_path / "question.wav", tone(0.5)),
        Kept(tmp_path / "out" / "reply.wav"),
        tmp_path / "cache",
    )
    yield box
    assert not box.cache.exists(), "a model cache was opened"


def command(name: str, box, audio: Path | None = None) -> list[str]:
    if name == "say":
        return ["say", "hi", "--output", str(box.kept.path)]
    if name == "chat":
        return ["chat", "--input", str(audio or box.question), "--output", str(box.kept.path)]
    return ["transcribe", str(audio or box.question)]


def test_the_guard_stops_a_row_that_would_load_a_model(sandbox):
    """What makes "before any model loads" an assertion: a good command under the guard
    ends with 99 as it reaches for a model, having written nothing."""
    result = run_cli(command("say", sandbox), models=False, env=sandbox.env)
    assert result.returncode == 99, result.stderr
    assert result.stderr.endswith("a model store was opened: this row loads a model\n")
    sandbox.kept.untouched()


# ---------------------------------------------------------------- bad settings files


def _toml(text: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "bad.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return make


def _latin1(folder: Path) -> Path:
    path = folder / "latin1.toml"
    path.write_bytes('[llm]\nsystem_prompt = "Réponds en français"\n'.encode("latin-1"))
    return path


def _utf16(folder: Path) -> Path:
    path = folder / "utf16.toml"
    path.write_bytes("[llm]\nmax_new_tokens = 5\n".encode("utf-16"))
    return path


def _unreadable(folder: Path) -> Path:
    path = folder / "locked.toml"
    path.write_text("[llm]\nmax_new_tokens = 5\n", encoding="utf-8")
    path.chmod(0)
    return path


def _folder(folder: Path) -> Path:
    path = folder / "settings.d"
    path.mkdir()
    return path


def _missing(folder: Path) -> Path:
    return folder / "missing.toml"


def _device_zero(folder: Path) -> Path:
    return Path("/dev/zero")


_SR = "expected 16000 (Silero VAD and Whisper take 16 kHz)"
ALL = ("say", "chat", "transcribe")

# (id, make the --config path, the commands it is tried with, the line after the prefix)
CONFIG_FAULTS = [
    ("temperature", _toml("[llm]\ntemperature = -1\n"), ("say", "chat"),
     "{c}: llm.temperature = -1: expected a number from 0 to 2"),
    ("max-new-tokens", _toml("[llm]\nmax_new_tokens = 0\n"), ("say", "chat"),
     "{c}: llm.max_new_tokens = 0: expected an integer from 1 to 4096"),
    ("end-silence", _toml("[vad]\nend_silence_ms = -500\n"), ("chat",),
     "{c}: vad.end_silence_ms = -500: expected an integer > 0 and <= 10000"),
    ("rate-0", _toml("[audio]\nsample_rate = 0\n"), ALL, "{c}: audio.sample_rate = 0: " + _SR),
    ("rate-7", _toml("[audio]\nsample_rate = 7\n"), ("chat",),
     "{c}: audio.sample_rate = 7: " + _SR),
    ("rate-1M", _toml("[audio]\nsample_rate = 1000000\n"), ("chat",),
     "{c}: audio.sample_rate = 1000000: " + _SR),
    ("block-0", _toml("[audio]\nblock_ms = 0\n"), ("chat",),
     "{c}: audio.block_ms = 0: expected an integer from 1 to 1000"),
    ("beam-0", _toml("[asr]\nbeam_size = 0\n"), ("chat",),
     "{c}: asr.beam_size = 0: expected an integer from 1 to 16"),
    ("threads-100000", _toml("[asr]\ncpu_threads = 100000\n"), ("transcribe",),
     "{c}: asr.cpu_threads = 100000: expected an integer from 0 to 1024"),
    ("timeout-negative", _toml("[llm]\nrequest_timeout_s = -1\n"), ("chat",),
     "{c}: llm.request_timeout_s = -1: expected a number from 0.5 to 3600"),
    ("top-p", _toml("[llm]\ntop_p = 1.5\n"), ("chat",),
     "{c}: unknown setting llm.top_p = 1.5; [llm] has: backend, model, device, path, url, "
     "served_model, request_timeout_s, fallback_to_local, system_prompt, max_new_tokens, "
     "context_tokens, temperature, threads, quantize"),
    ("asr-device-tpu", _toml('[asr]\ndevice = "tpu"\n'), ("transcribe", "chat"),
     "{c}: asr.device = 'tpu': expected one of 'auto', 'cpu', 'cuda'"),
    ("asr-task-summarize", _toml('[asr]\ntask = "summarize"\n'), ("transcribe", "chat"),
     "{c}: asr.task = 'summarize': expected one of 'transcribe', 'translate'"),
    ("not-toml", _toml("[llm\nmodel = 1\n"), ("say",),
     "{c}: not valid TOML: Expected ']' at the end of a table declaration (at line 1, "
     "column 5)"),
    ("latin-1", _latin1, ALL,
     "{c}: not UTF-8 text (byte 0xe9 at offset 24, line 2); save it as UTF-8"),
    ("utf-16", _utf16, ("say",), "{c}: not UTF-8 text (it is UTF-16); save it as UTF-8"),
    ("unreadable", _unreadable, ALL, "cannot read config file {c}: Permission denied"),
    ("a-folder", _folder, ("say",), "cannot read config file {c}: Is a directory"),
    ("missing", _missing, ALL, "config file not found: {c}"),
    ("dev-zero", _device_zero, ("say",),
     "{c}: over 1 MiB, not a settings file; pass the TOML file with --config"),
]  # fmt: skip

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _without_file_access_override() -> None:
    """In the child, before exec: drop root's power to read any file, so that a file with
    mode 000 is as unreadable to it as to any user (the bounding set caps what the exec'd
    program gets; the uid stays 0, so the interpreter is still reachable)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.parametrize(
    "make, cmd, expected",
    [
        pytest.param(make, cmd, expected, id=f"{name}-{cmd}")
        for name, make, cmds, expected in CONFIG_FAULTS
        for cmd in cmds
    ],
)
def test_a_bad_settings_file_is_one_line_before_any_model(sandbox, make, cmd, expected):
    config = make(sandbox.dir)
    privileged = make is _unreadable and os.geteuid() == 0
    result = run_cli(
        ["--config", str(config), *command(cmd, sandbox)],
        models=False,
        env=sandbox.env,
        preexec_fn=_without_file_access_override if privileged else None,
    )
    assert one_error_line(result) == expected.format(c=config)
    assert result.stdout == ""
    sandbox.kept.untouched()


# ---------------------------------------------------------------- bad audio inputs


def _absent(folder: Path) -> Path:
    return folder / "nothing-here.wav"


def _empty(folder: Path) -> Path:
    path = folder / "empty.wav"
    path.write_bytes(b"")
    return path


def _text(folder: Path) -> Path:
    path = folder / "notes.wav"
    path.write_text("Shopping list: milk, eggs, bread.\n" * 20, encoding="utf-8")
    return path


def _directory(folder: Path) -> Path:
    path = folder / "recordings.wav"
    path.mkdir()
    return path


# (id, make the input, the line after the prefix); each fails before a model loads
INPUT_FAULTS = [
    ("missing", _absent, "audio file not found: {a}"),
    ("empty", _empty, "audio file is empty: {a}"),
    ("text-named-wav", _text, "cannot decode {a} as audio (InvalidDataError)"),
    ("directory", _directory, "not a file: {a}"),
]


@pytest.mark.parametrize("cmd", ["transcribe", "chat"])
@pytest.mark.parametrize(
    "make, expected", [pytest.param(m, e, id=name) for name, m, e in INPUT_FAULTS]
)
def test_an_unreadable_recording_is_one_line_before_any_model(sandbox, make, expected, cmd):
    audio = make(sandbox.dir)
    result = run_cli(command(cmd, sandbox, audio), models=False, env=sandbox.env)
    assert one_error_line(result) == expected.format(a=audio)
    assert result.stdout == ""
    sandbox.kept.untouched()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """Inputs that need a model to judge: a WAV whose header claims three times the data
    it holds (a recording cut off), silence, white noise and 50 ms of a tone."""
    folder = tmp_path_factory.mktemp("recordings")
    question = speak("What is the capital of France?", folder / "question.wav")
    data = bytearray(question.read_bytes())
    at = data.find(b"data")
    (size,) = struct.unpack_from("<I", data, at + 4)
    struct.pack_into("<I", data, at + 4, 3 * size)
    struct.pack_into("<I", data, 4, len(data) - 8 + 2 * size)
    cut = folder / "cut-off.wav"
    cut.write_bytes(bytes(data))
    noise = np.random.default_rng(12).normal(0, 0.2, RATE).clip(-1, 1)
    return {
        "cut-off": cut,
        "silence": write_wav(folder / "silence.wav", silence(1.0)),
        "noise": write_wav(folder / "noise.wav", noise),
        "50ms": write_wav(folder / "blip.wav", tone(0.05)),
    }


@pytest.mark.slow
def test_a_cut_off_recording_is_transcribed_as_far_as_it_goes(recordings):
    assert soundfile.info(str(recordings["cut-off"])).frames > 0
    result = run_cli(["transcribe", str(recordings["cut-off"])], models=True, timeout=180)
    no_error(result)
    assert "capital" in result.stdout.lower(), result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", ["silence", "noise", "50ms"])
def test_a_recording_without_speech_transcribes_to_nothing(recordings, name):
    result = run_cli(["transcribe", str(recordings[name])], models=True, timeout=180)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip() == "", result.stdout  # nothing for a script to mistake
    assert result.stderr.strip().splitlines()[-1] == (
        f"voice-assistant: no speech heard in {recordings[name]}"
    )


@pytest.mark.slow
def test_a_cut_off_question_is_answered(recordings, tmp_path):
    kept = Kept(tmp_path / "reply.wav")
    result = run_cli(
        ["chat", "--input", str(recordings["cut-off"]), "--output", str(kept.path)],
        models=True,
        timeout=240,
    )
    no_error(result)
    assert re.search(r"^you: .*capital", result.stdout, re.I | re.M), result.stdout
    assert re.search(r"^assistant: \S", result.stdout, re.M), result.stdout
    reply, rate = soundfile.read(kept.path, dtype="float32")
    assert reply.size > 0.3 * rate and np.abs(reply).max() > 0.01, "no spoken reply written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reply.wav"]  # no temporary left


@pytest.mark.slow
@pytest.mark.parametrize("name", ["silence", "noise", "50ms"])
def test_a_question_without_speech_is_no_speech_heard(recordings, tmp_path, name):
    kept = Kept(tmp_path / "reply.wav")
    result = run_cli(
        ["chat", "--input", str(recordings[name]), "--output", str(kept.path)],
        models=True,
        timeout=240,
    )
    assert one_error_line(result) == f"no speech heard in {recordings[name]}"
    assert result.stdout == ""
    kept.untouched()


# ---------------------------------------------------------------- bad output targets


@pytest.mark.parametrize("cmd", ["say", "chat"])
@pytest.mark.parametrize(
    "target, expected",
    [
        pytest.param("reply", "name the file with one of .wav, .flac, .ogg, .mp3", id="no-ext"),
        pytest.param(
            "reply.xyz", "name the file with one of .wav, .flac, .ogg, .mp3", id="unknown-ext"
        ),
        pytest.param("out", "it is a folder", id="a-folder"),
        pytest.param("/proc/reply.wav", "No such file or directory", id="under-proc"),
        pytest.param(
            "no-such-folder/reply.wav",
            "{folder} does not exist",
            id="missing-parent",
        ),
        pytest.param(
            "out/reply.wav/reply.wav",
            "{folder} is not a folder",
            id="parent-is-a-file",
        ),
    ],
)
def test_an_output_that_cannot_be_written_is_one_line_before_any_model(
    sandbox, target, expected, cmd
):
    output = sandbox.dir / target  # an absolute target stays as it is
    named_badly = target in ("reply", "reply.xyz")
    if named_badly:  # a file of that name is there already, and stays as it was
        output.write_bytes(b"a file the user keeps")
    listing = sorted(p.name for p in sandbox.dir.iterdir())
    argv = ["say", "hi"] if cmd == "say" else ["chat", "--input", str(sandbox.question)]
    result = run_cli([*argv, "--output", str(output)], models=False, env=sandbox.env)
    line = one_error_line(result)
    assert line.startswith(f"cannot write {output}: "), line
    assert expected.format(folder=output.parent) in line, line
    assert result.stdout == ""
    if named_badly:
        assert output.read_bytes() == b"a file the user keeps"
    assert sorted(p.name for p in sandbox.dir.iterdir()) == listing  # no folder was made
    sandbox.kept.untouched()


# ---------------------------------------------------------------- the model cache
# Damage to a prepared copy (truncated, flipped bytes under an old timestamp, a voice half
# cut short, a converted LLM cut short), a preparer killed mid-way and two preparers at
# once are rows of tests/test_model_cache.py; the second live instance is in
# tests/test_instance_lock.py; a recording too long for chat is in tests/test_chat_long.py.


def test_a_cache_that_cannot_be_made_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    speech = write_wav(tmp_path / "q.wav", silence(0.5))
    result = run_cli(
        ["transcribe", str(speech)],
        models=True,
        env={"VOICE_ASSISTANT_CACHE_DIR": str(blocker / "cache")},
    )
    line = one_error_line(result)
    assert line.startswith(f"cannot prepare models in the cache {blocker / 'cache'}: "), line
    assert "set VOICE_ASSISTANT_CACHE_DIR to a writable folder" in line


@pytest.mark.slow
def test_two_prepare_models_at_once_in_a_fresh_home_both_succeed(tmp_path):
    env = {**os.environ, "VOICE_ASSISTANT_CACHE_DIR": str(tmp_path / "cache")}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "assistant", "prepare-models"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0 and "Traceback" not in err, err
        assert "models ready in" in out
    assert outputs[0][0].splitlines()[:2] == outputs[1][0].splitlines()[:2]  # same folders
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    folders = sorted(p.name for p in (tmp_path / "cache" / "models").iterdir())
    assert [
        name.split("-")[0] if name.startswith("piper-split-") else name for name in folders
    ] == [
        "gemma3-270m",
        "piper",  # piper-split-<hash of the voice file>
        "smollm2-135m-instruct-safetensors",
        "whisper-base",
    ]
