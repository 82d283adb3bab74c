"""Settings are checked where they enter: a wrong value is one line naming the setting, its
value and what is allowed, never a silently ignored value or a traceback from a worker."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.config import AssistantConfig, Limits, LlmConfig, VadConfig
from assistant.errors import ConfigError

VOICE_ASSISTANT = Path(sys.executable).with_name("voice-assistant")  # the installed command


def load_text(tmp_path: Path, text: str) -> AssistantConfig:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return AssistantConfig.load(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    "text, expected",
    [
        # a value outside a Literal's choices
        (
            '[vad]\nmode = "ptt"',
            "vad.mode = 'ptt': expected one of 'hands-free', 'push-to-talk'",
        ),
        ('[llm]\nbackend = "ollama"', "llm.backend = 'ollama': expected one of 'auto', "),
        ('[asr]\ncompute_type = "int4"', "asr.compute_type = 'int4': expected one of 'auto', "),
        # wrong types
        (
            '[llm]\nmax_new_tokens = "lots"',
            "llm.max_new_tokens = 'lots': expected an integer from 1 to 4096",
        ),
        ("[llm]\nmax_new_tokens = true", "llm.max_new_tokens = true: expected an integer from 1"),
        ("[vad]\nmin_speech_ms = 1.5", "vad.min_speech_ms = 1.5: expected an integer from 0 to"),
        ("[vad]\nbarge_in = 1", "vad.barge_in = 1: expected true or false"),
        ('[vad]\nbarge_in = "yes"', "vad.barge_in = 'yes': expected true or false"),
        ('[llm]\ntemperature = "hot"', "llm.temperature = 'hot': expected a number from 0 to 2"),
        ("[vad]\nthreshold = nan", "vad.threshold = nan: expected a number > 0 and < 1"),
        ('[tts]\nvoice = ["a.onnx"]', "tts.voice = ['a.onnx']: expected a string"),
        ("[asr]\nlanguage = 5", "asr.language = 5: expected a Whisper language code"),
        ('[asr]\nlanguage = "klingon"', "asr.language = 'klingon': expected a Whisper language"),
        ("[llm]\nurl = 8000", "llm.url = 8000: expected '' or a URL starting with http://"),
        # str | int | None: a name or an index
        ("[audio]\ninput_device = -1", "audio.input_device = -1: expected a device name or an "),
        ("[audio]\noutput_device = 1.5", "audio.output_device = 1.5: expected a device name"),
        ("[audio]\ninput_device = true", "audio.input_device = true: expected a device name"),
        ('[audio]\ninput_device = " "', "audio.input_device = ' ': expected a device name or "),
        # values a type alone does not rule out
        ('[llm]\nurl = "ftp://example.org/v1"', "llm.url = 'ftp://example.org/v1': expected ''"),
        ('[llm]\nurl = "localhost:8000"', "llm.url = 'localhost:8000': expected '' or a URL"),
        ("[audio]\nsample_rate = 44100", "audio.sample_rate = 44100: expected 16000"),
        ("[audio]\nsample_rate = 0", "audio.sample_rate = 0: expected 16000 (Silero VAD and "),
        ("[audio]\nsample_rate = 16000.0", "audio.sample_rate = 16000.0: expected 16000"),
        # the values of issue #12, each with its range
        ("[llm]\ntemperature = -1", "llm.temperature = -1: expected a number from 0 to 2"),
        ("[llm]\nmax_new_tokens = 0", "llm.max_new_tokens = 0: expected an integer from 1 to"),
        ("[vad]\nend_silence_ms = -500", "vad.end_silence_ms = -500: expected an integer > 0 "),
        ("[asr]\nbeam_size = 0", "asr.beam_size = 0: expected an integer from 1 to 16"),
        ("[asr]\ncpu_threads = 100000", "asr.cpu_threads = 100000: expected an integer from 0"),
        ("[llm]\nrequest_timeout_s = -5", "llm.request_timeout_s = -5: expected a number from 0.5"),
        ("[audio]\nblock_ms = 0", "audio.block_ms = 0: expected an integer from 1 to 1000"),
        ('[asr]\ndevice = "tpu"', "asr.device = 'tpu': expected one of 'auto', 'cpu', 'cuda'"),
        ('[asr]\ntask = "summarize"', "asr.task = 'summarize': expected one of 'transcribe', "),
        # one setting bounded by another
        (
            "[llm]\nmax_new_tokens = 400\ncontext_tokens = 300",
            "llm.context_tokens = 300: expected > llm.max_new_tokens (400)",
        ),
        (
            "[tts]\nmin_phrase_chars = 100\nmax_phrase_chars = 50",
            "tts.min_phrase_chars = 100: expected <= tts.max_phrase_chars (50)",
        ),
    ],
)
def test_a_bad_value_names_the_setting_its_value_and_what_is_allowed(tmp_path, text, expected):
    message = error_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'config.toml'}: "), message
    assert expected in message, message


def out_of_range(bounds: Limits, default: float, is_int: bool) -> list[float]:
    """Values just outside each declared bound."""
    step = 1 if is_int else 1e-3
    values = []
    if bounds.ge is not None:
        values.append(bounds.ge - step)
    if bounds.gt is not None:
        values.append(bounds.gt)
    if bounds.le is not None:
        values.append(bounds.le + step)
    if bounds.lt is not None:
        values.append(bounds.lt)
    assert values, f"no bound declared (default {default})"
    return [int(v) if is_int else v for v in values]


def ranged_settings() -> list[tuple[str, str, Limits, object]]:
    found = []
    for section in dataclasses.fields(AssistantConfig):
        for f in dataclasses.fields(section.default_factory()):
            if "limits" in f.metadata:
                found.append((section.name, f.name, f.metadata["limits"], f.default))
    return found


def test_every_numeric_setting_has_a_range():
    ranged = {f"{s}.{k}" for s, k, _, _ in ranged_settings()}
    config = AssistantConfig()
    numeric = {
        f"{section.name}.{f.name}"
        for section in dataclasses.fields(AssistantConfig)
        for f in dataclasses.fields(getattr(config, section.name))
        if type(getattr(getattr(config, section.name), f.name)) in (int, float)
    }
    assert numeric - {"audio.sample_rate"} <= ranged, numeric - ranged  # 16000 is its own rule
    assert {"vad.threshold", "llm.max_new_tokens", "tts.speed", "asr.beam_size"} <= ranged


# Where a side is left open on purpose: a bound there would refuse a value that works.
OPEN_BELOW = {"asr.log_prob_threshold"}  # ever lower admits every segment
OPEN_ABOVE = {
    "audio.input_device",  # any index the system has
    "audio.output_device",
    "asr.compression_ratio_threshold",  # ever higher never calls a segment a loop
}


@pytest.mark.parametrize("section, key, bounds, default", ranged_settings())
def test_each_range_is_closed_on_both_sides_unless_open_on_purpose(section, key, bounds, default):
    """A negative timeout, a beam of 0, a million threads: each is refused by a bound."""
    name = f"{section}.{key}"
    has_low = bounds.ge is not None or bounds.gt is not None
    has_high = bounds.le is not None or bounds.lt is not None
    assert has_low or name in OPEN_BELOW, f"{name} has no lower bound"
    assert has_high or name in OPEN_ABOVE, f"{name} has no upper bound"


@pytest.mark.parametrize("section, key, bounds, default", ranged_settings())
def test_each_range_admits_its_default_and_refuses_just_outside(
    tmp_path, section, key, bounds, default
):
    is_int = isinstance(default, int) and not isinstance(default, bool)
    if default is not None:
        assert bounds.admits(default), (key, default)
        loaded = load_text(tmp_path, f"[{section}]\n{key} = {json.dumps(default)}")
        assert getattr(getattr(loaded, section), key) == default
    for value in out_of_range(bounds, default, is_int or default is None):
        message = error_of(tmp_path, f"[{section}]\n{key} = {json.dumps(value)}")
        assert f"{section}.{key} = {value!r}: expected" in message, message
        assert bounds.describe() in message, message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[llm]\nmax_tokens = 5", "unknown setting llm.max_tokens = 5; did you mean llm.max_new"),
        ("[vad]\nnope = 1", "unknown setting vad.nope = 1; [vad] has: mode, threshold, "),
        ("[lm]\nmodel = 'x'", "[lm]: unknown table; did you mean [llm]?"),
        ("[sound]\nx = 1", "[sound]: unknown table; tables: [audio], [vad], [asr], [llm], [tts]"),
        ("max_new_tokens = 5", "max_new_tokens = 5: unknown setting; did you mean llm.max_new_"),
        ("volume = 5", "volume = 5: unknown setting; settings go in a table: [audio], [vad]"),
        ("llm = 5", "llm = 5: expected a table ([llm] and its settings)"),
    ],
)
def test_unknown_tables_and_settings_say_what_exists(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


def test_a_file_that_is_not_utf8_or_not_toml_or_not_readable(tmp_path):
    latin = tmp_path / "latin1.toml"
    latin.write_bytes('[llm]\nsystem_prompt = "Réponds en français"\n'.encode("latin-1"))
    with pytest.raises(
        ConfigError, match=r"latin1.toml: not UTF-8 text \(byte 0xe9 at offset 24, line 2\)"
    ):
        AssistantConfig.load(latin)
    utf16 = tmp_path / "utf16.toml"
    utf16.write_bytes("[llm]\nmax_new_tokens = 5\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"utf16.toml: not UTF-8 text \(it is UTF-16\)"):
        AssistantConfig.load(utf16)
    broken = tmp_path / "broken.toml"
    broken.write_text("[llm\nmodel = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken.toml: not valid TOML: .*line 1"):
        AssistantConfig.load(broken)
    with pytest.raises(ConfigError, match="cannot read config file .*: Is a directory"):
        AssistantConfig.load(tmp_path)
    with pytest.raises(ConfigError, match="config file not found: .*missing.toml"):
        AssistantConfig.load(tmp_path / "missing.toml")


# Every setting, none at its default.
FULL_FILE = """
[audio]
input_device = "USB Microphone"
output_device = 3
sample_rate = 16000
block_ms = 64
echo = "half-duplex"
echo_canceller = "speex"

[vad]
mode = "push-to-talk"
threshold = 0.6
min_speech_ms = 150
end_silence_ms = 700
finished_silence_ms = 250
speculate_after_ms = 64
pre_roll_ms = 400
max_utterance_s = 60
barge_in = false

[asr]
model = "/opt/whisper-small"
device = "cpu"
compute_type = "int8_float32"
language = "fr"
task = "translate"
beam_size = 2
cpu_threads = 2
no_speech_threshold = 0.5
log_prob_threshold = -0.8
compression_ratio_threshold = 2.2
window = "full"

[llm]
backend = "openai"
model = "/opt/qwen.gguf"
device = "cuda"
path = "stock"
url = "http://127.0.0.1:8000/v1"
served_model = "qwen2.5"
request_timeout_s = 5
fallback_to_local = true
system_prompt = "Be brief."
max_new_tokens = 64
context_tokens = 2048
temperature = 0.7
threads = 2
quantize = "none"

[tts]
engine = "piper"
voice = "/opt/voice.onnx"
speed = 1.2
min_phrase_chars = 12
max_phrase_chars = 120
first_phrase_words = 0

[interpret]
source = "fr"
target = "zh"
engine = "llm"
llm_model = "/opt/translate.gguf"
llm_url = "http://127.0.0.1:8000/v1"
served_model = "qwen"
mt_model = "/opt/opus-mt-fr-en"
speak = false
input = "monitor"
partial_every_ms = 300
end_silence_ms = 700
max_segment_s = 8.0
context_segments = 3
max_new_tokens = 64
"""


def to_toml(config: AssistantConfig) -> str:
    lines = []
    for section, values in dataclasses.asdict(config).items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def test_a_full_file_loads_every_setting_and_round_trips(tmp_path):
    config = load_text(tmp_path, FULL_FILE)
    defaults = dataclasses.asdict(AssistantConfig())
    loaded = dataclasses.asdict(config)
    for section, values in defaults.items():
        for key, default in values.items():
            if key not in ("sample_rate", "engine"):  # each has one allowed value
                assert loaded[section][key] != default, f"{section}.{key} not covered"
    assert config.vad.max_utterance_s == 60.0 and isinstance(config.vad.max_utterance_s, float)
    assert config.llm.request_timeout_s == 5.0 and isinstance(config.llm.request_timeout_s, float)
    assert config.audio.input_device == "USB Microphone" and config.audio.output_device == 3
    assert config.llm.fallback_to_local is True and config.vad.barge_in is False
    again = load_text(tmp_path, to_toml(config))
    assert again == config
    assert config.validate() == config


def test_validate_checks_a_config_built_in_code():
    config = AssistantConfig()
    assert config.validate() is config  # the defaults are valid
    config.llm.request_timeout_s = 10  # an int for a float is fine, and becomes a float
    config.validate()
    assert config.llm.request_timeout_s == 10.0 and isinstance(config.llm.request_timeout_s, float)
    config.vad.mode = "ptt"
    with pytest.raises(ConfigError, match=r"^config: vad.mode = 'ptt': expected one of"):
        config.validate()
    config = AssistantConfig(llm=LlmConfig(max_new_tokens="lots"))
    with pytest.raises(ConfigError, match="in code: llm.max_new_tokens = 'lots': expected an int"):
        config.validate(source="in code")
    config = AssistantConfig(vad=VadConfig(end_silence_ms=0))
    with pytest.raises(ConfigError, match="vad.end_silence_ms = 0: expected an integer > 0 and"):
        config.validate()


def test_command_line_values_are_checked_like_the_file(capsys, tmp_path):
    assert main(["--llm-url", "ftp://example.org", "doctor"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "voice-assistant: error: --llm-url: llm.url = 'ftp://example.org': "
        "expected '' or a URL starting with http:// or https://\n"
    )
    # an option overrides the file, and a good option over a good file still loads
    path = tmp_path / "config.toml"
    path.write_text('[llm]\nurl = "http://a:1/v1"\n', encoding="utf-8")
    from assistant.cli import build_parser, load_config

    args = build_parser().parse_args(
        ["--config", str(path), "--llm-url", "https://b/v1", "--device", "cpu", "doctor"]
    )
    config = load_config(args)
    assert config.llm.url == "https://b/v1" and config.asr.device == config.llm.device == "cpu"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VOICE_ASSISTANT), *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "content, expected",
    [
        (b'[llm]\nmax_new_tokens = "lots"\n', "llm.max_new_tokens = 'lots': expected an integer"),
        (b'[vad]\nmode = "ptt"\n', "vad.mode = 'ptt': expected one of"),
        (b"[asr]\nbeam = 5\n", "unknown setting asr.beam = 5; did you mean asr.beam_size?"),
        (b"\xff\xfe[llm]\n", "not UTF-8 text"),
        (b"[llm\n", "not valid TOML"),
    ],
)
def test_the_command_exits_2_with_one_line_for_a_bad_file(tmp_path, content, expected):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(content)
    result = run_cli("--config", str(bad), "doctor")
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert result.stderr.startswith(f"voice-assistant: error: {bad}: "), result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""  # it failed before doctor ran


def test_a_byte_order_mark_is_accepted(tmp_path):
    """Windows Notepad starts UTF-8 files with one; the settings are read as written."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[llm]\nmax_new_tokens = 5\n")
    assert AssistantConfig.load(path).llm.max_new_tokens == 5


def test_a_huge_file_or_device_is_refused_without_reading_it_all(tmp_path):
    big = tmp_path / "recording.toml"
    big.write_bytes(b"#" * ((1 << 20) + 1))
    with pytest.raises(ConfigError, match=r"recording.toml: over 1 MiB, not a settings file"):
        AssistantConfig.load(big)
    with pytest.raises(ConfigError, match=r"^/dev/zero: over 1 MiB, not a settings file"):
        AssistantConfig.load(Path("/dev/zero"))
    exactly = tmp_path / "comments.toml"
    exactly.write_bytes(b"#" * (1 << 20))  # at the limit: still a file of comments
    assert AssistantConfig.load(exactly) == AssistantConfig()
