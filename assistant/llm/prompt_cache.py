"""Keeps the chat model's attention cache between turns.

Each turn's prompt repeats the system prompt and the conversation so far, so without
this the model re-reads a growing history before every reply (over a 20-minute session
the time to the first word doubled). The cache holds the keys and values of exactly the
tokens in ``ids``; a new prompt reuses its longest common prefix with them, which also
covers every edit for free: a dropped speculative reply, trimmed old turns, a reply
re-tokenised differently from how it was generated.
"""

from __future__ import annotations

from collections.abc import Sequence


class PromptCache:
    def __init__(self, new_cache) -> None:
        self._new_cache = new_cache  # () -> an empty transformers Cache
        self.cache = None
        self.ids: list[int] = []

    def reuse(self, prompt: Sequence[int]) -> int:
        """Make the cache hold a prefix of ``prompt``; returns how many tokens it holds.

        At least the last prompt token is left out, since its logits pick the first token.
        """
        keep = 0
        limit = min(len(self.ids), len(prompt) - 1)
        while keep < limit and self.ids[keep] == prompt[keep]:
            keep += 1
        if self.cache is None or keep == 0:
            self.cache = self._new_cache()
            keep = 0
        elif keep < len(self.ids):
            self.cache.crop(keep - len(self.ids))  # a negative count removes from the end
        self.ids = list(prompt[:keep])
        return keep

    def extend(self, ids: Sequence[int]) -> None:
        """Record tokens the model has just read into the cache."""
        self.ids.extend(ids)

    def clear(self) -> None:
        self.cache = None
        self.ids = []
