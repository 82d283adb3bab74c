"""Phrases to audio: each phrase is synthesised as it arrives, in pieces.

A phrase cut between words loses its quiet ending (the next phrase follows at once);
the reply's very first audio loses its quiet start, which the user would only wait
through. The first piece of a reply is reported to the turn state, which is what lets
generation go on (see ``replying``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from assistant.audio.trim import trim_quiet_start, without_quiet_end
from assistant.phrases import ends_mid_sentence
from assistant.pipeline.items import Phrase, Speech
from assistant.pipeline.stage import Handler, StageContext
from assistant.tts import TtsEngine


def phrase_audio(tts: TtsEngine, text: str) -> Iterator[np.ndarray]:
    """The phrase's audio; a phrase cut between words loses its quiet ending."""
    chunks = tts.synthesize(text)
    if not ends_mid_sentence(text):
        return iter(chunks)
    return without_quiet_end(chunks, tts.sample_rate)


class Voicing(Handler):
    name = "tts"

    def __init__(self, ctx: StageContext, tts: TtsEngine) -> None:
        super().__init__(ctx)
        self._tts = tts

    def process(self, item: Phrase) -> Iterator[Speech]:
        ctx, ticket = self.ctx, item.ticket
        rate = self._tts.sample_rate
        if item.text is None:
            yield Speech(ticket, None, rate)
            return
        ctx.mark(ticket, "tts_start")
        first = item.first
        begins = item.text
        try:
            for samples in phrase_audio(self._tts, item.text):
                if not ctx.turns.is_current(ticket):
                    break
                if first:
                    samples = trim_quiet_start(samples, rate)
                ctx.mark(ticket, "tts_first_audio")
                yield Speech(ticket, samples, rate, begins)
                begins = ""
                if first:
                    first = False
                    ctx.turns.first_audio(ticket)
        except Exception as exc:
            ctx.fail("tts", ticket, exc)
        finally:
            if item.first:  # generation must not wait for audio that will not come
                ctx.turns.first_audio(ticket)
