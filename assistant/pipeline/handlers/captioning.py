"""Segment audio to live captions in the speaker's language, stabilised.

Each decode of the open segment updates its caption through local agreement
(``assistant/interpret/agreement.py``): what two decodes agree on is confirmed and never
rewritten. A partial decode gives way to anything queued behind it (the segment's next
snapshot or its end): a caption nobody will read must not delay the one they will.

The segment's language (unless fixed) is settled once a decode of at least two seconds
detects it with confidence, or at the segment's end: on a second of audio Whisper often
takes French for Japanese. Until then partial captions are all tentative, since their
words may come back in another language and script; confirmed words are always in the
segment's language. A closed segment's text goes
on to translation; one with no words (a cough, noise) is withdrawn, and so is one that
is the app's own translation heard back (``is_echo``), whose partial captions are not
shown either.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from assistant.asr import SAMPLE_RATE, Abandoned
from assistant.events import SourceCaption
from assistant.interpret.agreement import LocalAgreement
from assistant.interpret.record import CaptionRecord, CaptionSegment
from assistant.pipeline.items import ClosedSegment, SegmentAudio
from assistant.pipeline.stage import Handler, StageContext

log = logging.getLogger(__name__)
_SURE = 0.8  # language probability past which a partial decode settles the language
_SURE_AFTER_S = 2.0  # ... if it heard this much


class Captioning(Handler):
    name = "asr"

    def __init__(
        self,
        ctx: StageContext,
        recognizer,
        record: CaptionRecord,
        *,
        is_echo: Callable[[str, float, float], bool] = lambda text, started_at, ended_at: False,
        on_final: Callable[[int, float], None] = lambda index, at: None,
    ) -> None:
        super().__init__(ctx)
        self._is_echo = is_echo
        self._on_final = on_final  # told when each segment's final caption went out
        self._recognizer = recognizer
        self._record = record
        self._index = 0
        self._agreement = LocalAgreement()
        self._language: str | None = None
        self._spoken = False  # a caption of this segment has been shown

    def ticket(self, item):
        return None  # "stop speaking" drops queued speech, never a caption

    def process(self, item: SegmentAudio) -> Iterator[ClosedSegment]:
        if item.index != self._index:
            self._index, self._agreement, self._spoken = item.index, LocalAgreement(), False
            self._language = self.ctx.config.interpret.source or None
        if not item.final:
            if not self.waiting():
                self._partial(item)
            return
        transcript = self._decode(item, final=True)
        text = self._agreement.final(transcript.text if transcript else "")
        language = self._language or (transcript.language if transcript else "")
        end = item.start + item.audio.size / SAMPLE_RATE
        if text and self._is_echo(text, item.started_at, item.ended_at):
            log.info("dropped segment %d: it is the spoken translation (%r)", item.index, text)
            text = ""
        self._publish(item, text, "", language, end, final=True)
        if not text:
            return
        self._on_final(item.index, time.monotonic())
        self._record.add(CaptionSegment(item.index, item.start, end, text, language))
        yield ClosedSegment(
            item.ticket, item.index, text, language, item.audio, item.start, end, item.ended_at
        )

    def _partial(self, item: SegmentAudio) -> None:
        transcript = self._decode(item, final=False)
        if transcript is None or not transcript.text:
            return
        if self._is_echo(transcript.text, item.started_at, item.ended_at):
            return  # not shown: the translation heard back, so far
        end = item.start + item.audio.size / SAMPLE_RATE
        if self._language is None:  # not settled: nothing is confirmed yet
            self._publish(item, "", transcript.text, transcript.language, end)
            return
        caption = self._agreement.update(transcript.text)
        self._publish(item, caption.confirmed, caption.tentative, self._language, end)

    def _decode(self, item: SegmentAudio, *, final: bool):
        """The transcript; None when given up for newer audio, or when decoding failed
        (reported once, the segment closes without words)."""
        try:
            transcript = self._recognizer.transcribe(
                item.audio,
                language=self._language,
                abandoned=None if final else self.waiting,
                speech_known=True,
            )
        except Abandoned:
            return None
        except Exception as exc:
            self.ctx.fail("asr", self.ctx.turns.current, exc)
            return None
        heard_s = item.audio.size / SAMPLE_RATE
        sure = transcript.language_probability >= _SURE and heard_s >= _SURE_AFTER_S
        if self._language is None and transcript.text and (sure or final):
            self._language = transcript.language
        return transcript

    def _publish(self, item, confirmed, tentative, language, end, *, final=False) -> None:
        if not (confirmed or tentative or self._spoken):
            return  # nothing was shown for this segment, and nothing is to be
        self._spoken = True
        self.ctx.emit(
            SourceCaption(
                item.ticket.turn,
                item.index,
                confirmed,
                tentative,
                language,
                item.start,
                end,
                final,
            )
        )
