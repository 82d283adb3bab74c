"""Prompt building shared by the local backends, which count tokens themselves."""

from __future__ import annotations

from abc import abstractmethod

from assistant.llm.base import ChatBackend

NEXT_TURN_TOKENS = 160  # room kept for a question and the start of its reply


class TokenizedChat(ChatBackend):
    """A backend that tokenizes its own chat prompts: the conversation is trimmed to
    ``config.context_tokens`` oldest turns first, a third of the budget at a time, so
    the prompt's cached prefix stays the same for several turns."""

    @abstractmethod
    def _chat_tokens(self, user_text: str | None, generation: bool = True) -> list[int]:
        """Token ids of the conversation (plus ``user_text`` and the generation prompt)."""

    def prompt_ids(self, user_text: str) -> list[int]:
        """Token ids of the chat prompt, dropping the oldest turns past the context budget."""
        budget = self.config.context_tokens
        ids = self._chat_tokens(user_text)
        if len(ids) > budget:
            history = len(self._chat_tokens(None, generation=False))
            self._trim(room=len(ids) - history)  # this question's own tokens
            ids = self._chat_tokens(user_text)
        return ids[-budget:]

    def _trim(self, room: int) -> None:
        """Drop the oldest turns if the history leaves under ``room`` tokens in the budget,
        down to two thirds of it, so the kept prefix stays stable for several turns."""
        budget = self.config.context_tokens
        if len(self._chat_tokens(None, generation=False)) + room <= budget:
            return
        while self.conversation.turns:
            del self.conversation.turns[:2]
            if len(self._chat_tokens(None, generation=False)) + room <= budget * 2 // 3:
                return

    def _next_turn_opening(self) -> list[int]:
        """The conversation so far and the next user turn's opening ("<|im_start|>user\\n"
        in ChatML): the tokens every next prompt starts with, whatever the user says."""
        one, other = self._chat_tokens("A"), self._chat_tokens("?")
        same = 0
        while same < min(len(one), len(other)) and one[same] == other[same]:
            same += 1
        return one[:same]
