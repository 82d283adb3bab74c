"""Which voice reads a translation aloud: one that speaks the target language.

The English Piper voice reading French or Chinese is unintelligible (it phonemises every
word as English), so the interpreter asks here for a voice by language. Each backend is a
chooser in ``_CHOOSERS``, tried in order: a real voice for the language if there is one
(Piper: the user's configured voice, then the bundled one), else espeak-ng, which speaks
almost everything, badly, and is named as the last resort so the UI can say so. A new
backend is a new module with a chooser and one more entry in the tuple, not a flag.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from assistant.config import TtsConfig
from assistant.errors import ModelError
from assistant.model_store import ModelStore
from assistant.tts.base import TtsEngine, create_engine

# Codes that name the same language in Piper's voice files and in Whisper.
_SAME = {"cmn": "zh", "nb": "no"}


@dataclass(frozen=True)
class Voice:
    engine: TtsEngine
    language: str  # the Whisper code it was chosen for
    description: str  # for the UI: "Piper en_US joe (medium)"
    last_resort: bool  # True: robotic but understandable; the UI says so


Chooser = Callable[[str, TtsConfig, ModelStore, TtsEngine | None], Voice | None]


def voice_for_language(
    language: str, tts_config: TtsConfig, store: ModelStore, *, loaded: TtsEngine | None = None
) -> Voice:
    """A voice that speaks ``language`` (a Whisper code: en, zh, fr, ...).

    ``loaded`` is the engine already made from ``tts_config`` (the assistant's voice), reused
    rather than loaded a second time when it is the one chosen. Raises ConfigError when no
    backend speaks the language, ModelError when the voice it needs cannot be loaded."""
    language = language.strip().lower()
    for choose in _CHOOSERS:
        voice = choose(language, tts_config, store, loaded)
        if voice is not None:
            return voice
    raise AssertionError("the last chooser always answers")  # pragma: no cover


def _piper(
    language: str, config: TtsConfig, store: ModelStore, loaded: TtsEngine | None
) -> Voice | None:
    """The configured Piper voice if its language is the target, else the bundled one if
    its language is (English), else None."""
    if config.engine != "piper":
        return None
    references = [config.voice] if config.voice == "default" else [config.voice, "default"]
    for reference in references:
        meta = _piper_metadata(store, reference)
        if language not in _piper_languages(meta):
            continue
        if reference == config.voice and loaded is not None:
            engine = loaded
        else:
            engine = create_engine(replace(config, voice=reference), store)
        return Voice(engine, language, _piper_description(meta), last_resort=False)
    return None


def _espeak(language: str, config: TtsConfig, store: ModelStore, loaded: TtsEngine | None) -> Voice:
    from assistant.tts.espeak_engine import EspeakEngine

    engine = EspeakEngine(language, config)
    description = f"espeak-ng {engine.voice.description} (last-resort voice)"
    return Voice(engine, language, description, last_resort=True)


_CHOOSERS: tuple[Chooser, ...] = (_piper, _espeak)


def _piper_metadata(store: ModelStore, reference: str) -> dict:
    _, config_path = store.piper_voice(reference)
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the Piper voice settings {config_path}: {exc}") from None
    return meta if isinstance(meta, dict) else {}


def _piper_languages(meta: dict) -> set[str]:
    """The Whisper codes a Piper voice speaks, from its .onnx.json: ``language.code``
    ("en_US" -> en), ``language.family`` and ``espeak.voice`` ("cmn" -> zh)."""
    language = meta.get("language") if isinstance(meta.get("language"), dict) else {}
    espeak = meta.get("espeak") if isinstance(meta.get("espeak"), dict) else {}
    found = set()
    for value in (language.get("code"), language.get("family"), espeak.get("voice")):
        if isinstance(value, str) and value:
            base = value.replace("_", "-").split("-")[0].lower()
            found.add(_SAME.get(base, base))
    return found


def _piper_description(meta: dict) -> str:
    language = meta.get("language") if isinstance(meta.get("language"), dict) else {}
    audio = meta.get("audio") if isinstance(meta.get("audio"), dict) else {}
    parts = ["Piper", str(language.get("code", "")), str(meta.get("dataset", ""))]
    text = " ".join(p for p in parts if p)
    return f"{text} ({audio['quality']})" if audio.get("quality") else text
