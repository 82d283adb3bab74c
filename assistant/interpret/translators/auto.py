"""The translator behind ``interpret.engine = "auto"``: for each segment, the best one
the direction has.

The segment's language is often only known once it is heard (source auto-detected), so
the choice is made per segment, in order: the user's MT model where it covers the
direction (a model made for it beats a small general one), the translation LLM where its
quality was measured good enough (``TRUSTED``), Whisper's translate task into English,
and the LLM as the last resort for any other pair.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant.errors import ConfigError
from assistant.interpret.languages import language_name
from assistant.interpret.translators.base import Cancelled, Context, SourceSegment, Translator


class AutoTranslator(Translator):
    name = "auto"

    def __init__(
        self,
        *,
        mt: Translator | None = None,
        llm: Translator | None = None,
        whisper: Translator | None = None,
        trusted: frozenset[tuple[str, str]] | None = None,
    ) -> None:
        self._mt, self._llm, self._whisper = mt, llm, whisper
        self._trusted = trusted  # None: every direction the LLM takes
        self.last: Translator | None = None  # the one the latest segment went to

    def choose(self, source: str, target: str) -> Translator | None:
        if self._mt is not None and self._mt.supports(source, target):
            return self._mt
        llm = self._llm
        trusted = self._trusted is None or (source, target) in self._trusted
        if llm is not None and trusted and llm.supports(source, target):
            return llm
        if self._whisper is not None and self._whisper.supports(source, target):
            return self._whisper
        if self._llm is not None and self._llm.supports(source, target):
            return self._llm
        return None

    def supports(self, source: str, target: str) -> bool:
        return self.choose(source, target) is not None

    def translate(
        self,
        segment: SourceSegment,
        target: str,
        context: Sequence[Context] = (),
        cancelled: Cancelled = lambda: False,
    ) -> str:
        chosen = self.choose(segment.language, target)
        if chosen is None:
            raise ConfigError(
                f"no translator here can translate {language_name(segment.language)} into "
                f"{language_name(target)}: add a machine-translation model "
                "(interpret.mt_model) or a server (interpret.llm_url)"
            )
        self.last = chosen
        return chosen.translate(segment, target, context, cancelled)

    def describe(self) -> str:
        parts = [t.describe() for t in (self._mt, self._llm, self._whisper) if t is not None]
        return "auto: " + "; ".join(parts)

    def close(self) -> None:
        for translator in (self._mt, self._llm, self._whisper):
            if translator is not None:
                translator.close()
