"""The user's words to the reply's phrases, streamed as the chat backend generates them.

Generation runs on a worker of this stage while the stage hands each phrase on as soon
as the phrase splitter closes it. On two cores, decoding on while the first phrase is
synthesised would halve the voice's share of the CPU exactly while the user waits for
the first sound, so generation pauses until the turn state reports the reply's first
audio; the rest of the reply then has the first phrase's playback to catch up, with the
backend on fewer threads (``share_cores``).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from assistant.events import ReplyFinished, ReplyToken
from assistant.llm import ChatBackend
from assistant.phrases import PhraseSplitter
from assistant.pipeline.items import Ask, Phrase
from assistant.pipeline.stage import Handler, StageContext

log = logging.getLogger(__name__)
_FIRST_AUDIO_WAIT_S = 2.0  # the longest generation pauses for the first phrase's audio


@dataclass(frozen=True)
class _Done:
    text: str
    cancelled: bool
    remembered: bool  # the backend added the exchange to its memory (it did not fail)


class Replying(Handler):
    name = "llm"

    def __init__(self, ctx: StageContext, chat: ChatBackend) -> None:
        super().__init__(ctx)
        self._chat = chat
        self._generator = ThreadPoolExecutor(1, thread_name_prefix="assistant-generate")

    def process(self, ask: Ask) -> Iterator[Phrase]:
        self._forget_dropped_reply()
        ctx, ticket = self.ctx, ask.ticket
        if not ctx.turns.is_current(ticket):
            return
        out: queue.Queue[Phrase | _Done] = queue.Queue()
        self._generator.submit(self._generate, ask, out)
        while not isinstance(item := out.get(), _Done):
            yield item
        if item.remembered:
            ctx.turns.replied(ticket)
        self._forget_dropped_reply()
        if item.cancelled and ctx.turns.current.turn == ticket.turn:
            return  # only the speculative attempt was dropped: nothing to announce
        ctx.publish(ticket, ReplyFinished(ticket.turn, item.text, item.cancelled))
        yield Phrase(ticket, None)
        self._prefill()

    def _generate(self, ask: Ask, out: queue.Queue) -> None:
        """On the generator worker: run the backend, queue phrases, then ``_Done``."""
        ctx, ticket, tts = self.ctx, ask.ticket, self.ctx.config.tts
        splitter = PhraseSplitter(
            tts.min_phrase_chars, tts.max_phrase_chars, tts.first_phrase_words
        )
        spoken = False

        def speak(phrase: str) -> None:
            nonlocal spoken
            ctx.mark(ticket, "llm_first_phrase")
            out.put(Phrase(ticket, phrase, first=not spoken))
            if not spoken:
                spoken = True
                ctx.turns.wait_first_audio(ticket, _FIRST_AUDIO_WAIT_S)
                self._chat.share_cores()

        def on_text(text: str) -> None:
            ctx.mark(ticket, "llm_first_token")
            ctx.publish(ticket, ReplyToken(ticket.turn, text))
            for phrase in splitter.feed(text):
                speak(phrase)

        text, cancelled, remembered = "", False, False
        try:
            ctx.mark(ticket, "llm_start")
            text, cancelled = self._chat.reply(ask.text, on_text, cancelled=ctx.stale(ticket))
            remembered = True
            if not cancelled:
                for phrase in splitter.flush():
                    speak(phrase)
        except Exception as exc:
            ctx.fail("llm", ticket, exc)
        finally:
            out.put(_Done(text, cancelled, remembered))

    def _prefill(self) -> None:
        """Read the exchange into the backend's cache while the reply plays."""
        try:
            self._chat.prefill()
        except Exception:  # only a speed-up: the next reply reads what the cache lacks
            log.exception("prefilling the LLM cache failed")

    def _forget_dropped_reply(self) -> None:
        """A reply the user talked over before the turn ended never happened: the
        backend's memory must not keep it."""
        if self.ctx.turns.take_dropped_reply():
            self._chat.forget_last()

    def close(self) -> None:
        self._generator.shutdown(wait=False)
