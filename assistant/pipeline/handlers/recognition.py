"""Speech to text: audio of a turn in, the user's words out (as a question to answer).

A partial transcript (a live caption) gives way to anything queued behind it and to a
newer turn: the final transcript must not wait for a caption nobody will read.
"""

from __future__ import annotations

from collections.abc import Iterator

from assistant.asr import Abandoned
from assistant.events import FinalTranscript, NothingHeard, PartialTranscript
from assistant.pipeline.items import Ask, Heard, Probe
from assistant.pipeline.stage import Handler, StageContext
from assistant.turn_end import reads_finished


class Recognition(Handler):
    name = "asr"

    def __init__(self, ctx: StageContext, recognizer) -> None:
        super().__init__(ctx)
        self._recognizer = recognizer

    def process(self, item: Heard | Probe) -> Iterator[Ask]:
        if isinstance(item, Probe):
            self._probe(item)
            return
        if not item.final:
            if not self.waiting():
                self._partial(item)
            return
        ctx, ticket = self.ctx, item.ticket
        ctx.mark(ticket, "asr_start")
        transcript = self._transcribe(item, ctx.stale(ticket), final=True)
        if transcript is None:
            return
        ctx.mark(ticket, "asr_end")
        if not transcript.text:
            ctx.publish(ticket, NothingHeard(ticket.turn, "no words recognised"), finishes=True)
            return
        ctx.publish(ticket, FinalTranscript(ticket.turn, transcript.text, transcript.language))
        if ctx.turns.is_current(ticket):
            yield Ask(ticket, transcript.text)
            if ctx.config.vad.finished_silence_ms and reads_finished(transcript.text):
                ctx.turns.transcript_finished(ticket)

    def _transcribe(self, item: Heard, abandoned, *, final: bool):
        """The transcript, or None when abandoned or failed (a failed final transcript
        ends the turn with its error; a failed caption only reports it)."""
        try:
            return self._recognizer.transcribe(
                item.audio, abandoned=abandoned, speech_known=item.voiced
            )
        except Abandoned:
            return None
        except Exception as exc:
            self.ctx.fail("asr", item.ticket, exc, finishes=final)
            return None

    def _superseded(self, item: Heard):
        return lambda: not self.ctx.turns.is_current(item.ticket) or self.waiting()

    def _probe(self, item: Probe) -> None:
        """Words in speech heard over the assistant's voice (empty if none or stale)."""
        stale = self.ctx.stale(item.ticket)
        try:
            transcript = self._recognizer.transcribe(item.audio, abandoned=stale, speech_known=True)
        except Abandoned:
            transcript = None
        except Exception as exc:  # the barge-in is decided without words, not lost
            self.ctx.fail("asr", item.ticket, exc)
            transcript = None
        item.reply(transcript.text if transcript is not None else "")

    def _partial(self, item: Heard) -> None:
        transcript = self._transcribe(item, self._superseded(item), final=False)
        if transcript is not None and transcript.text and self.ctx.turns.is_current(item.ticket):
            self.ctx.emit(PartialTranscript(item.ticket.turn, transcript.text))
