"""Typed settings for every stage, loadable from a TOML file.

One dataclass per stage keeps each worker's knobs next to each other and lets the CLI
and the window override single fields without knowing the rest.

Every value is checked where it enters (a file, a command-line option, ``validate`` for a
config built in code) against its field's annotation and the limits declared next to it,
so a typo or a wrong type is one line naming the setting, not a silently ignored value or
a traceback from a worker thread minutes later.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import platformdirs

from assistant.errors import ConfigError

APP_NAME = "voice-assistant"

Device = Literal["auto", "cpu", "cuda"]
# CTranslate2's compute types, and "auto": float16 on CUDA, int8 on CPU.
WhisperCompute = Literal[
    "auto",
    "default",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
]


@dataclass(frozen=True)
class Limits:
    """Bounds a numeric setting must keep; None leaves that side open."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def admits(self, value: float) -> bool:
        return not (
            (self.ge is not None and not value >= self.ge)
            or (self.gt is not None and not value > self.gt)
            or (self.le is not None and not value <= self.le)
            or (self.lt is not None and not value < self.lt)
        )

    def describe(self) -> str:
        if self.ge is not None and self.le is not None:
            return f"from {_num(self.ge)} to {_num(self.le)}"
        parts = [
            f"{op} {_num(bound)}"
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " and ".join(parts)


def limits(**bounds: float) -> dict[str, Limits]:
    """Field metadata for a numeric setting: ``field(default=..., metadata=limits(ge=0))``."""
    return {"limits": Limits(**bounds)}


def rule(check: Callable[[Any], bool], expects: str) -> dict[str, Any]:
    """Field metadata for a value the annotation alone cannot pin down."""
    return {"check": check, "expects": expects}


def _http_url(url: str) -> bool:
    return url == "" or url.startswith(("http://", "https://"))


def _language(code: str | None) -> bool:
    if code in (None, "", "auto"):
        return True
    from assistant.asr import language_codes  # faster-whisper's list, only when one is set

    return code in language_codes()


def _device(value: str | int | None) -> bool:
    return not isinstance(value, str) or value.strip() != ""  # "" would match every device


_DEVICE = {**limits(ge=0), **rule(_device, "a device name or an index")}
# A thread count past any machine's cores: a typo (or 100000) would start that many threads.
_MAX_THREADS = 1024


@dataclass
class AudioConfig:
    # None: the system default; a name (or part of one) or an index from `doctor`
    input_device: str | int | None = field(default=None, metadata=_DEVICE)
    output_device: str | int | None = field(default=None, metadata=_DEVICE)
    # What VAD and ASR consume: Silero's windows and Whisper are both fixed at 16 kHz, and
    # the microphone is resampled to this rate, so no other rate can work.
    sample_rate: int = field(
        default=16000,
        metadata=rule(lambda rate: rate == 16000, "16000 (Silero VAD and Whisper take 16 kHz)"),
    )
    # One Silero VAD window at 16 kHz; a block past a second only delays every stage.
    block_ms: int = field(default=32, metadata=limits(ge=1, le=1000))
    # On loudspeakers the microphone hears the assistant too. "cancel": take its voice out
    # of the microphone (WebRTC AEC3) and interrupt only for the user's words; where the
    # microphone hears no echo (headphones) it is passed as it is; where no canceller can
    # run, half duplex. "half-duplex": do not listen while it speaks. "off": nothing.
    echo: Literal["cancel", "half-duplex", "off"] = "cancel"
    # Which canceller: "auto" runs WebRTC AEC3 (least echo: what the VAD judges) and, where
    # the system has libspeexdsp, Speex beside it (keeps the user's words when both talk:
    # what is transcribed); "webrtc" or "speex" runs one alone.
    echo_canceller: Literal["auto", "speex", "webrtc"] = "auto"


@dataclass
class VadConfig:
    mode: Literal["hands-free", "push-to-talk"] = "hands-free"
    threshold: float = field(default=0.5, metadata=limits(gt=0, lt=1))  # speech probability
    # shorter bursts are noise, not a turn
    min_speech_ms: int = field(default=200, metadata=limits(ge=0, le=5000))
    # silence that ends a turn; past 10 s a turn would seem never to end
    end_silence_ms: int = field(default=600, metadata=limits(gt=0, le=10_000))
    # Silence that ends a turn once the speculative transcript reads as a finished sentence
    # (it ends in . ? or !); 0 always waits for end_silence_ms. Needs speculation on.
    finished_silence_ms: int = field(default=300, metadata=limits(ge=0, le=10_000))
    # After this much silence the reply is prepared speculatively (transcribed, generated,
    # synthesised) while the end of the turn is confirmed; 0 turns it off. One VAD window:
    # a quiet window inside a word starts an attempt that speech then drops, and the
    # recogniser abandons it after its encoder pass, so it holds up the real one at most
    # that long (docs/performance.md has the measurements).
    speculate_after_ms: int = field(default=32, metadata=limits(ge=0, le=10_000))
    # audio kept from before speech started, so the first syllable survives
    pre_roll_ms: int = field(default=500, metadata=limits(ge=0, le=10_000))
    # A turn is cut here even if the user keeps talking: under a second no question fits,
    # and ten minutes is already 38 MB of audio held for one transcription.
    max_utterance_s: float = field(default=90.0, metadata=limits(ge=1, le=600))
    barge_in: bool = True  # speech while the assistant talks interrupts it


@dataclass
class AsrConfig:
    model: str = "default"  # "default" (embedded Whisper base) or a CTranslate2 model folder
    device: Device = "auto"
    compute_type: WhisperCompute = "auto"  # auto: float16 on CUDA, int8 on CPU
    language: str | None = field(  # None: detect
        default=None,
        metadata=rule(_language, "a Whisper language code such as en, fr, de, es, zh, or 'auto'"),
    )
    task: Literal["transcribe", "translate"] = "transcribe"
    # Live turns only; files decode with asr.FILE_DECODING (beam 5). Wider beams cost
    # latency on every turn for no measurable accuracy past a handful.
    beam_size: int = field(default=1, metadata=limits(ge=1, le=16))
    # 0: with a fitted window on a CPU, decoding on 1 thread and encoding on up to 4 (a
    # second copy of the model, ~110 MB); else CTranslate2's default. N: N for both.
    cpu_threads: int = field(default=0, metadata=limits(ge=0, le=_MAX_THREADS))
    # Segments above this no-speech probability (and below log_prob_threshold) are silence.
    no_speech_threshold: float = field(default=0.6, metadata=limits(ge=0, le=1))
    log_prob_threshold: float = field(default=-1.0, metadata=limits(le=0))  # a log-probability
    # Segments that compress better than this repeat themselves; at 1 or below, ordinary
    # sentences would read as loops.
    compression_ratio_threshold: float = field(default=2.4, metadata=limits(gt=1))
    # Encoder window for live turns. "fit": the utterance plus 2 s (at least 8 s) instead of
    # Whisper's fixed 30 s, several times faster on a CPU for a slightly higher error rate;
    # "full": always 30 s; "auto": fit on the CPU, full on a GPU. Files always use 30 s.
    window: Literal["auto", "fit", "full"] = "auto"


@dataclass
class LlmConfig:
    # "auto": the server at ``url`` when one is set, else the local transformers model;
    # "llama.cpp" runs the GGUF file itself (needs llama-cpp-python); "openai": any
    # OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, transformers serve).
    backend: Literal["auto", "transformers", "llama.cpp", "openai"] = "auto"
    model: str = (
        "default"  # "default" (embedded SmolLM2-135M), a transformers folder or a .gguf file
    )
    device: Device = "auto"
    # transformers on the CPU. "fast": the lean one-token step for Llama-type models, on
    # int8 weights where the CPU has native bfloat16 and float32 elsewhere, plus grouped
    # attention for long caches; a model it cannot take is an error. "stock": transformers'
    # own forward and sdpa attention, float32 unless quantize is "int8". "auto": fast where
    # the model allows it, else stock. Either fast choice drops to stock for good (with a
    # warning) if the lean step fails mid-reply. On CUDA only "auto" and "stock" (the same).
    path: Literal["auto", "fast", "stock"] = "auto"
    # OpenAI-compatible server: base URL (e.g. http://127.0.0.1:8000/v1) and the served
    # model name. The API key comes from VOICE_ASSISTANT_API_KEY or the OS keyring only.
    url: str = field(
        default="", metadata=rule(_http_url, "'' or a URL starting with http:// or https://")
    )
    served_model: str = ""
    # no first token (or no next token) for this long fails; under half a second even a
    # local server fails every request, and past an hour a dead one is never reported
    request_timeout_s: float = field(default=20.0, metadata=limits(ge=0.5, le=3600))
    fallback_to_local: bool = False  # answer with the local model when the server fails
    system_prompt: str = (
        "You are a friendly voice assistant running on the user's own computer. "
        "Answer in one or two short spoken sentences. Do not use lists, markdown or emoji."
    )
    # a spoken reply; 4096 tokens is already some twenty minutes of speech
    max_new_tokens: int = field(default=96, metadata=limits(ge=1, le=4096))
    # Prompt budget: the oldest turns are dropped past it. It must hold the system prompt
    # and a question, and more than one reply (see _RELATIONS). llama.cpp allocates its
    # cache for all of it at load, so a huge value fails there, not here, without a bound.
    context_tokens: int = field(default=1536, metadata=limits(ge=256, le=131_072))
    temperature: float = field(default=0.0, metadata=limits(ge=0, le=2))  # 0: greedy
    threads: int = field(default=0, metadata=limits(ge=0, le=_MAX_THREADS))  # 0: torch default
    # "auto": int8 weights with bfloat16 activations on CPUs that run them natively
    # (decoding reads a quarter of the bytes and picks the float model's tokens), else
    # float32, and float32 when path is "stock"; "int8": always (an error on CPUs
    # without native bfloat16); "none": never quantise.
    quantize: Literal["auto", "int8", "none"] = "auto"


@dataclass
class TtsConfig:
    engine: Literal["piper"] = "piper"
    voice: str = "default"  # "default" (embedded Piper joe) or a Piper .onnx file
    # Piper's rate; beyond these speech turns unintelligible.
    speed: float = field(default=1.0, metadata=limits(ge=0.25, le=4))
    # a clause shorter than this waits for more text
    min_phrase_chars: int = field(default=24, metadata=limits(ge=0, le=1000))
    # longer text is cut at the last space; much shorter cuts every word or two, and much
    # longer waits for a paragraph before the voice starts
    max_phrase_chars: int = field(default=160, metadata=limits(ge=10, le=1000))
    # The reply's first phrase ends sooner, so the user hears it sooner: at any clause
    # break, before a word like "in" or "because" once 3 words precede it, or after this
    # many words. 0: it waits for a sentence end or a long clause like the others.
    first_phrase_words: int = field(default=8, metadata=limits(ge=0, le=100))


def _target_language(code: str) -> bool:
    from assistant.interpret.languages import known_language  # Whisper's codes, lazily

    return known_language(code)


@dataclass
class InterpretConfig:
    """The live interpreter (``voice-assistant interpret``, the window's Interpreter)."""

    # The language spoken; None or "auto": detected for each segment.
    source: str | None = field(
        default=None,
        metadata=rule(_language, "a Whisper language code such as en, fr, de, es, zh, or 'auto'"),
    )
    target: str = field(
        default="en", metadata=rule(_target_language, "a language code such as en, zh, fr, de")
    )
    # "whisper": Whisper's own translate task (into English only, from the audio); "llm":
    # the translation LLM (Gemma 3 270M by default, or a server at llm_url); "mt": a
    # machine-translation model folder (mt_model); "auto": the best one the direction has.
    engine: Literal["auto", "whisper", "llm", "mt"] = "auto"
    llm_model: str = "default"  # "default" (the embedded Gemma 3 270M GGUF) or a .gguf file
    # An OpenAI-compatible server to translate with instead (vLLM, llama.cpp's server, ...)
    llm_url: str = field(
        default="", metadata=rule(_http_url, "'' or a URL starting with http:// or https://")
    )
    served_model: str = ""
    # A transformers sequence-to-sequence folder: Marian/OPUS-MT, NLLB or M2M100.
    mt_model: str = ""
    speak: bool = True  # read the translation aloud; False: captions only
    # "mic", "monitor" (what this computer plays: a call, a video) or an input device name
    input: str = field(
        default="mic", metadata=rule(lambda v: v.strip() != "", "mic, monitor or a device")
    )
    # how often the open segment is decoded again for its partial caption
    partial_every_ms: int = field(default=500, metadata=limits(ge=100, le=5000))
    # a pause this long closes a segment
    end_silence_ms: int = field(default=500, metadata=limits(ge=100, le=5000))
    # a speaker who never pauses: the segment is closed anyway (Whisper hears 30 s at most)
    max_segment_s: float = field(default=12.0, metadata=limits(ge=2, le=28))
    # segments before this one shown to the translator as context
    context_segments: int = field(default=2, metadata=limits(ge=0, le=10))
    # the longest translation in tokens (LLM and MT)
    max_new_tokens: int = field(default=128, metadata=limits(ge=8, le=1024))


# Settings bounded by another one: (setting, operator, other setting).
_RELATIONS = (
    ("llm.context_tokens", ">", "llm.max_new_tokens"),
    ("tts.min_phrase_chars", "<=", "tts.max_phrase_chars"),
)
_OPERATORS = {">": lambda a, b: a > b, "<=": lambda a, b: a <= b}


@dataclass
class AssistantConfig:
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    interpret: InterpretConfig = field(default_factory=InterpretConfig)

    @classmethod
    def load(cls, path: Path | None = None) -> AssistantConfig:
        """Read settings from ``path`` (or the user's config file if it exists)."""
        if path is None:
            path = default_config_path()
            if not path.exists():
                return cls()
        raw = _read_config_bytes(Path(path))
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ConfigError(f"{path}: not UTF-8 text (it is UTF-16); save it as UTF-8")
        try:
            text = raw.decode("utf-8-sig")  # a byte order mark (Windows Notepad) is fine
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ConfigError(
                f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}, "
                f"line {line}); save it as UTF-8"
            ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {_one_line(str(exc))}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> AssistantConfig:
        """Settings from a TOML document's tables; ``source`` prefixes every error."""
        return cls().update(data, source)

    def update(self, data: dict[str, Any], source: str) -> AssistantConfig:
        """Set ``{section: {key: value}}`` after checking each value; returns self.

        Raises ``ConfigError`` (one line: ``source``, the setting, its value and what is
        allowed) on the first problem.
        """
        sections = _sections()
        for section, values in data.items():
            if section not in sections:
                raise ConfigError(_unknown_section(source, section, values))
            if not isinstance(values, dict):
                raise ConfigError(
                    f"{source}: {section} = {_show(values)}: expected a table "
                    f"([{section}] and its settings)"
                )
            target = getattr(self, section)
            specs = _fields(type(target))
            for key, value in values.items():
                if key not in specs:
                    raise ConfigError(_unknown_key(source, section, key, value, specs))
                setattr(target, key, _checked(source, f"{section}.{key}", specs[key], value))
        self._check_relations(source)
        return self

    def validate(self, source: str = "config") -> AssistantConfig:
        """Check every setting as ``load`` would, for a config built or changed in code;
        returns self (ints in float settings become floats)."""
        for section, cls in _sections().items():
            target = getattr(self, section)
            if not isinstance(target, cls):
                raise ConfigError(
                    f"{source}: {section} = {_show(target)}: expected a {cls.__name__}"
                )
            for key, spec in _fields(cls).items():
                value = getattr(target, key)
                setattr(target, key, _checked(source, f"{section}.{key}", spec, value))
        self._check_relations(source)
        return self

    def get(self, key: str) -> Any:
        section, name = key.split(".")
        return getattr(getattr(self, section), name)

    def _check_relations(self, source: str) -> None:
        for key, op, other in _RELATIONS:
            value, bound = self.get(key), self.get(other)
            if not _OPERATORS[op](value, bound):
                raise ConfigError(
                    f"{source}: {key} = {_show(value)}: expected {op} {other} ({_show(bound)})"
                )


# A settings file is a few kilobytes; reading stops past this, so that /dev/zero or a
# recording passed by mistake is refused at once instead of filling the memory.
_MAX_CONFIG_BYTES = 1 << 20


def _read_config_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: over {_MAX_CONFIG_BYTES >> 20} MiB, not a settings file; "
            "pass the TOML file with --config"
        )
    return raw


@dataclass(frozen=True)
class _Field:
    hint: Any  # the resolved annotation
    limits: Limits | None
    check: Callable[[Any], bool] | None
    expects: str  # what is allowed, in words


@functools.cache
def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(AssistantConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(AssistantConfig)}


@functools.cache
def _fields(cls: type) -> dict[str, _Field]:
    hints = typing.get_type_hints(cls)
    specs = {}
    for f in dataclasses.fields(cls):
        bounds = f.metadata.get("limits")
        expects = f.metadata.get("expects") or _describe(hints[f.name])
        if bounds is not None:
            expects = f"{expects} {bounds.describe()}"
        specs[f.name] = _Field(hints[f.name], bounds, f.metadata.get("check"), expects)
    return specs


_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(_show(choice) for choice in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint) if arg is not type(None))
    return _WORDS[hint]


_MISSING = object()


def _conform(hint: Any, value: Any) -> Any:
    """``value`` as the annotation wants it (an int for a float becomes a float), or
    _MISSING. bool is an int to Python, never to a setting."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        return value if any(type(value) is type(c) and value == c for c in choices) else _MISSING
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            conformed = _conform(arg, value)
            if conformed is not _MISSING:
                return conformed
        return _MISSING
    if hint is type(None):
        return value if value is None else _MISSING
    if isinstance(value, bool):
        return value if hint is bool else _MISSING
    if hint is float and isinstance(value, int | float):
        return float(value) if math.isfinite(value) else _MISSING
    return value if isinstance(value, hint) else _MISSING


def _checked(source: str, key: str, spec: _Field, value: Any) -> Any:
    conformed = _conform(spec.hint, value)
    if (
        conformed is _MISSING
        or (
            spec.limits is not None
            and isinstance(conformed, int | float)
            and not spec.limits.admits(conformed)
        )
        or (spec.check is not None and not spec.check(conformed))
    ):
        raise ConfigError(f"{source}: {key} = {_show(value)}: expected {spec.expects}")
    return conformed


def _unknown_section(source: str, name: str, value: Any) -> str:
    sections = list(_sections())
    if not isinstance(value, dict):  # a setting outside any table
        owners = [s for s in sections if name in _fields(_sections()[s])]
        where = (
            f"did you mean {owners[0]}.{name} (under [{owners[0]}])?"
            if owners
            else "settings go in a table: " + ", ".join(f"[{s}]" for s in sections)
        )
        return f"{source}: {name} = {_show(value)}: unknown setting; {where}"
    close = difflib.get_close_matches(name, sections, n=1)
    hint = (
        f"did you mean [{close[0]}]?"
        if close
        else "tables: " + ", ".join(f"[{s}]" for s in sections)
    )
    return f"{source}: [{name}]: unknown table; {hint}"


def _unknown_key(source: str, section: str, key: str, value: Any, specs: dict) -> str:
    close = difflib.get_close_matches(key, list(specs), n=1, cutoff=0.6)
    hint = (
        f"did you mean {section}.{close[0]}?" if close else f"[{section}] has: " + ", ".join(specs)
    )
    return f"{source}: unknown setting {section}.{key} = {_show(value)}; {hint}"


def _show(value: Any) -> str:
    """A value as one short line, written as in TOML where they differ."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(bound: float) -> str:
    return f"{bound:g}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def cache_dir() -> Path:
    """Where prepared models live; ``VOICE_ASSISTANT_CACHE_DIR`` overrides it."""
    override = os.environ.get("VOICE_ASSISTANT_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME))
