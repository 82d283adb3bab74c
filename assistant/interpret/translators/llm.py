"""Translation by a small base LLM prompted with examples: Gemma 3 270M by default.

The embedded Gemma is a base model with no chat template, and at 270M parameters it
follows instructions poorly but continues a pattern well. So the prompt is raw text, a
few example pairs in the direction asked for and then the segment, and the model's
continuation up to the end of the line is the translation:

    French: Où se trouve la gare ?
    English: Where is the train station?

    French: <the segment>
    English:

The examples come from one small table of the same sentences in every language, so each
direction among its languages has its own without a prompt written per pair. The
segments just before (``Context``) are added as the last examples: they carry the names
and the subject of the conversation, and the KV cache keeps the fixed opening of the
prompt from one segment to the next (only the new lines are read). Decoding is greedy.

``tests/bench/translation_quality.py`` measures it per direction (chrF against
``tests/data/bilingual.json``); that decides which directions the interpreter trusts it
with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from assistant.config import AssistantConfig, LlmConfig
from assistant.errors import ConfigError
from assistant.interpret.languages import (
    has_cjk,
    join_units,
    joiner,
    language_name,
    sentences,
    units,
    unspaced,
)
from assistant.interpret.translators.base import Cancelled, Context, SourceSegment, Translator
from assistant.llm.base import ChatBackend
from assistant.model_store import ModelStore

# The example sentences, each in every language the translator offers. None of them is
# in the evaluation set (tests/data/bilingual.json).
EXAMPLES: tuple[Mapping[str, str], ...] = (
    {
        "en": "Where is the train station?",
        "zh": "火车站在哪里？",
        "fr": "Où se trouve la gare ?",
        "de": "Wo ist der Bahnhof?",
        "es": "¿Dónde está la estación de tren?",
    },
    {
        "en": "The weather is very nice today.",
        "zh": "今天天气很好。",
        "fr": "Il fait très beau aujourd'hui.",
        "de": "Das Wetter ist heute sehr schön.",
        "es": "Hoy hace muy buen tiempo.",
    },
    {
        "en": "My friend is waiting for me outside the hotel.",
        "zh": "我的朋友在酒店外面等我。",
        "fr": "Mon ami m'attend devant l'hôtel.",
        "de": "Mein Freund wartet vor dem Hotel auf mich.",
        "es": "Mi amigo me está esperando fuera del hotel.",
    },
    {
        "en": "I would like a cup of coffee, please.",
        "zh": "请给我一杯咖啡。",
        "fr": "Je voudrais une tasse de café, s'il vous plaît.",
        "de": "Ich hätte gern eine Tasse Kaffee, bitte.",
        "es": "Quisiera una taza de café, por favor.",
    },
    {
        "en": "Hello, how are you?",
        "zh": "你好，最近怎么样？",
        "fr": "Bonjour, comment allez-vous ?",
        "de": "Hallo, wie geht es Ihnen?",
        "es": "Hola, ¿cómo está?",
    },
)
LANGUAGES = tuple(EXAMPLES[0])
UNKNOWN = "Text"  # the label of a segment whose language was not detected
_CONTEXT_CHARS = 1200  # of earlier segments in the prompt: it stays well inside n_ctx
N_CTX = 1024  # prompt tokens for the local model: examples, context and the segment


@dataclass(frozen=True)
class PromptStyle:
    """How the prompt is laid out (the bench compares a few)."""

    shots: int = 5  # example pairs from EXAMPLES
    header: str = ""  # a first line, with {source} and {target}: "Translate {source} to {target}."
    labels: Mapping[str, str] | None = None  # line labels by language; None: English names

    def label(self, code: str) -> str:
        return (self.labels or {}).get(code) or (language_name(code) if code else UNKNOWN)


# Chosen by tests/bench/translation_quality.py (figures in its docstring): five examples
# beat one and three, and a header line or labels in Chinese did not help.
DEFAULT_STYLE = PromptStyle(shots=5)


class LlmTranslator(Translator):
    """A text translator on any backend that can ``complete`` raw text: the local GGUF
    through llama.cpp, or an OpenAI-compatible server's ``/completions``."""

    name = "llm"

    def __init__(
        self,
        backend: ChatBackend,
        *,
        max_new_tokens: int = 128,
        context_segments: int = 2,
        style: PromptStyle | None = None,
    ) -> None:
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.context_segments = context_segments
        self.style = style or DEFAULT_STYLE

    def supports(self, source: str, target: str) -> bool:
        return target in LANGUAGES and (source in LANGUAGES or source == "")

    def translate(
        self,
        segment: SourceSegment,
        target: str,
        context: Sequence[Context] = (),
        cancelled: Cancelled = lambda: False,
    ) -> str:
        text = " ".join(segment.text.split())  # one line: a newline ends the answer
        if not text or cancelled():
            return ""
        source = segment.language or ("zh" if has_cjk(text) else "")
        if not self.supports(source, target):
            raise ConfigError(
                f"the LLM translator has no examples for {language_name(source)} to "
                f"{language_name(target)}; it knows {', '.join(LANGUAGES)}"
            )
        if source == target:
            return text
        # One sentence at a time (the earlier ones as context): given two, the small
        # model may answer with one of them only.
        done: list[Context] = []
        for sentence in sentences(text):
            if cancelled():
                break
            prompt = self.prompt(sentence, source, target, [*context, *done])
            out, _ = self.backend.complete(
                prompt, lambda piece: None, cancelled, max_tokens=self.max_new_tokens, stop=("\n",)
            )
            if translated := tidy(out, target):
                done.append(Context(sentence, translated))
        return joiner(target).join(c.translation for c in done)

    def prompt(self, text: str, source: str, target: str, context: Sequence[Context] = ()) -> str:
        """The few-shot prompt: a header if the style has one, the table's examples, the
        earlier segments, then ``text`` and the target's label."""
        style = self.style
        src, dst = style.label(source), style.label(target)
        shots = EXAMPLES[: style.shots]
        pairs = [(row[source or _other(target, i)], row[target]) for i, row in enumerate(shots)]
        pairs += _recent(context, self.context_segments)
        lines = [style.header.format(source=src, target=dst) + "\n"] if style.header else []
        lines += [f"{src}: {a}\n{dst}: {b}\n" for a, b in pairs]
        lines.append(f"{src}: {text}\n{dst}:")
        return "\n".join(lines)

    def describe(self) -> str:
        return f"llm translator: {self.backend.describe()}"

    def close(self) -> None:
        self.backend.close()


def _other(target: str, i: int) -> str:
    """A language other than ``target`` for the i-th example of an undetected source."""
    others = [code for code in LANGUAGES if code != target]
    return others[i % len(others)]


def _recent(context: Sequence[Context], count: int) -> list[tuple[str, str]]:
    """The last ``count`` earlier segments with a translation, as one-line pairs, as many
    of the newest as fit in _CONTEXT_CHARS."""
    pairs: list[tuple[str, str]] = []
    size = 0
    for item in reversed(list(context)[-count:] if count else []):
        pair = (" ".join(item.text.split()), " ".join(item.translation.split()))
        if not all(pair):
            continue
        size += len(pair[0]) + len(pair[1])
        if size > _CONTEXT_CHARS:
            break
        pairs.insert(0, pair)
    return pairs


def tidy(text: str, target: str) -> str:
    """The model's line as a caption: stripped, and with no spaces between the characters
    of a language written without them."""
    text = text.strip()
    return join_units(units(text)) if unspaced(target) else text


def load_llm_translator(config: AssistantConfig, store: ModelStore) -> LlmTranslator:
    """The translator ``interpret`` settings ask for: the server at ``interpret.llm_url``
    when one is set, else the GGUF (``interpret.llm_model``) on llama.cpp."""
    settings = config.interpret
    if settings.llm_url:
        from assistant.llm.openai_chat import OpenAIChat

        backend: ChatBackend = OpenAIChat(
            LlmConfig(
                backend="openai",
                url=settings.llm_url,
                served_model=settings.served_model,
                request_timeout_s=config.llm.request_timeout_s,
                max_new_tokens=settings.max_new_tokens,
                temperature=0.0,
            )
        )
    else:
        from assistant.llm.llama_cpp_chat import LlamaCppChat

        path = store.translation_gguf(settings.llm_model)
        llm = LlmConfig(
            backend="llama.cpp",
            model=str(path),
            context_tokens=N_CTX,
            max_new_tokens=settings.max_new_tokens,
            temperature=0.0,
            # One thread unless told otherwise: the interpreter decodes speech beside it,
            # and with both cores asked for, a translation beside a busy core took
            # seconds instead of a quarter of one (docs/performance.md).
            threads=config.llm.threads or 1,
        )
        backend = LlamaCppChat(llm, store, completion_only=True)
    return LlmTranslator(
        backend,
        max_new_tokens=settings.max_new_tokens,
        context_segments=settings.context_segments,
    )
