"""Translations to audio, a sentence at a time, in the target language's voice.

The first sentence plays while the next is synthesised. Chinese and Japanese sentences end
at full-width marks (。？！), which the phrase splitter for spaced languages does not see.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from assistant.phrases import PhraseSplitter, speakable
from assistant.pipeline.handlers.voicing import phrase_audio
from assistant.pipeline.items import SpokenAudio, SpokenText
from assistant.pipeline.stage import Handler, StageContext
from assistant.tts import TtsEngine

_FULL_WIDTH_END = re.compile(r"(?<=[。？！；])")


def sentences(text: str) -> list[str]:
    parts = []
    for piece in _FULL_WIDTH_END.split(text):
        splitter = PhraseSplitter(min_chars=24, max_chars=160)
        parts += splitter.feed(piece + " ") + splitter.flush()
    return [p for p in (speakable(p) for p in parts) if p]


class Speaking(Handler):
    name = "tts"

    def __init__(self, ctx: StageContext, voice: TtsEngine) -> None:
        super().__init__(ctx)
        self._voice = voice

    def process(self, item: SpokenText) -> Iterator[SpokenAudio]:
        rate = self._voice.sample_rate
        try:
            for sentence in sentences(item.text):
                for samples in phrase_audio(self._voice, sentence):
                    if not self.ctx.turns.is_current(item.ticket):
                        return
                    yield SpokenAudio(
                        item.ticket, item.index, samples, rate, item.text, item.ended_at
                    )
        except Exception as exc:
            self.ctx.fail("tts", item.ticket, exc)
        yield SpokenAudio(item.ticket, item.index, None, rate, item.text, item.ended_at)
