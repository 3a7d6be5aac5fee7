"""What the workers need from a chat platform to answer one question in one thread.

Slack and Teams each implement `ChatThread`; the answer use case (`workers.chat_answer`) is
written once against it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

from workers.answer import Answer
from workers.kv import KeyValue
from workers.prompt import Turn

Reader = Callable[[str], frozenset[str]]


class DeliveryError(Exception):
    """The chat platform refused a post or could not be reached after retries; retry later."""


POSTED_MEMORY_SECONDS = 7 * 86400


class PostedMessages:
    """The messages an answer's earlier runs posted, so a task that runs again edits them
    instead of posting them twice. Without a store (`kv` None) nothing is remembered."""

    def __init__(self, kv: KeyValue | None, question_id: str) -> None:
        self._kv = kv
        self._key = f"posted:{question_id}"
        self._ids: list[str | None] = json.loads(kv.get(self._key) or "[]") if kv else []

    def target(self, index: int, placeholder: str | None) -> str | None:
        """The message to edit for part `index`: what an earlier run posted, else (for the
        first part) the placeholder; None means post a new one."""
        known = self._ids[index] if index < len(self._ids) else None
        return known or (placeholder if index == 0 else None)

    def record(self, index: int, message_id: str) -> None:
        if self._kv is None:
            return
        self._ids += [None] * (index + 1 - len(self._ids))
        self._ids[index] = message_id
        self._kv.put(self._key, json.dumps(self._ids), POSTED_MEMORY_SECONDS)


class ChatThread(Protocol):
    @property
    def question_id(self) -> str: ...

    @property
    def text(self) -> str: ...

    def reader_principals(self, org_domains: list[str], reader: Reader) -> frozenset[str]:
        """Whose documents the reply may draw on: everyone who can read the reply."""
        ...

    def history(self) -> list[Turn]:
        """Earlier turns of the conversation, oldest first."""
        ...

    def post_answer(self, answer: Answer) -> None:
        """Replace the placeholder with the answer (idempotent: a re-run edits, never re-posts)."""
        ...

    def post_notice(self, text: str, new_message: bool = False) -> None:
        """A short apology or status in place of an answer; `new_message` leaves the
        placeholder alone (when editing it is what keeps failing)."""
        ...
