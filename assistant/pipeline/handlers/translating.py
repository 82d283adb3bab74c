"""Closed segments to translations, each with the segments before it as context.

A segment already in the target language is kept as it is and not spoken (the listener
heard it already): a bilingual conversation switches language without the user touching
anything. The translation goes to the caption record and the window at once, and to the
voice when speaking is on.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator

from assistant.events import ErrorOccurred, SegmentTimings, TranslatedCaption
from assistant.interpret.lag import SegmentLag
from assistant.interpret.record import CaptionRecord
from assistant.interpret.translators.base import Context, SourceSegment, Translator
from assistant.pipeline.items import ClosedSegment, SpokenText
from assistant.pipeline.stage import Handler, StageContext


class Translating(Handler):
    name = "translate"

    def __init__(
        self,
        ctx: StageContext,
        translator: Translator,
        record: CaptionRecord,
        lag: SegmentLag,
    ) -> None:
        super().__init__(ctx)
        self._translator = translator
        self._record = record
        self._lag = lag
        self._context: collections.deque[Context] = collections.deque(
            maxlen=max(1, ctx.config.interpret.context_segments)
        )
        self.speak = ctx.config.interpret.speak

    def ticket(self, item):
        return None  # "stop speaking" drops queued speech, never a caption

    def process(self, item: ClosedSegment) -> Iterator[SpokenText]:
        ctx, target = self.ctx, self.ctx.config.interpret.target
        context = list(self._context) if ctx.config.interpret.context_segments else []
        if item.language == target:
            translation = item.text
        else:
            try:
                translation = self._translator.translate(
                    SourceSegment(item.text, item.language, item.audio),
                    target,
                    context,
                    lambda: ctx.turns.stopped,
                ).strip()
            except Exception as exc:  # this segment stays untranslated; the next is tried
                ctx.fail("translate", ctx.turns.current, exc)
                return
        if not translation:  # said, so that a caption without one is not a mystery
            ctx.emit(
                ErrorOccurred(
                    ctx.turns.current.turn,
                    "translate",
                    f"no translation for the segment at {item.start:.1f} s "
                    f"({self._translator.name} gave no text)",
                )
            )
            return
        self._context.append(Context(item.text, translation))
        self._record.translated(item.index, translation, target)
        lags = self._lag.mark(item.index, "translation", time.monotonic())
        ctx.emit(
            TranslatedCaption(
                item.ticket.turn,
                item.index,
                item.text,
                translation,
                item.language,
                target,
                item.start,
                item.end,
            )
        )
        if self.speak and item.language != target:
            yield SpokenText(ctx.turns.current, item.index, translation, target, item.ended_at)
        else:
            ctx.emit(SegmentTimings(item.ticket.turn, item.index, lags))
