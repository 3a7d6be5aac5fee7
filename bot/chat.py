"""What the workers need from a chat platform to answer one question in one thread.

Slack and Teams each implement `ChatThread`; the answer use case (`workers.chat_answer`) is
written once against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from workers.answer import Answer
from workers.prompt import Turn

Reader = Callable[[str], frozenset[str]]


class DeliveryError(Exception):
    """The chat platform refused a post or could not be reached after retries; retry later."""


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
