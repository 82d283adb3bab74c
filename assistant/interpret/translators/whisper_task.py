"""Whisper's own translate task: any language it hears, into English, from the audio.

It needs no second model, so it is always there; it listens rather than reads, so it
does not see the caption's text or the context, and it only ever writes English.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant.errors import ConfigError
from assistant.interpret.translators.base import Cancelled, Context, SourceSegment, Translator


class WhisperTranslator(Translator):
    name = "whisper"

    def __init__(self, recognizer) -> None:
        self._recognizer = recognizer

    def supports(self, source: str, target: str) -> bool:
        return target == "en"

    def translate(
        self,
        segment: SourceSegment,
        target: str,
        context: Sequence[Context] = (),
        cancelled: Cancelled = lambda: False,
    ) -> str:
        if target != "en":
            raise ConfigError(
                f"Whisper translates into English only, not {target!r}: "
                "choose the llm or mt engine for that"
            )
        if segment.audio is None or not segment.audio.size or not segment.text:
            return ""
        transcript = self._recognizer.transcribe(
            segment.audio,
            language=segment.language or None,
            task="translate",
            abandoned=cancelled,
            speech_known=True,
            keep_unlikely=True,  # the caption already has words: say what they mean
        )
        return transcript.text

    def describe(self) -> str:
        return "Whisper's translate task (into English, from the audio)"
