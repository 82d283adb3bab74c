"""Chat backends behind one interface (``base.ChatBackend``), chosen by ``llm.backend``."""

from __future__ import annotations

from assistant.llm.base import ChatBackend, Conversation
from assistant.llm.factory import create_chat

__all__ = ["ChatBackend", "Conversation", "create_chat"]
