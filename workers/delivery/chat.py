"""What the workers need from a chat platform to answer one question in one thread.

Slack and Teams each implement `ChatThread`; the answer use case (`workers.chat_answer`) is
written once against it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from workers.kv import KeyValue, StoreUnavailable

if TYPE_CHECKING:  # types only: the front doors share DeliveryError without the pipeline
    from workers.rag.answer import Answer
    from workers.rag.prompt import Turn
    from workers.readers import View

Reader = Callable[[str], frozenset[str]]


@dataclass(frozen=True)
class ViewRules:
    """What deciding whose documents an answer may use needs besides the conversation."""

    reader: Reader  # one person's principals from their email (raises ReaderError)
    org_domains: list[str]
    max_members: int  # larger conversations are answered from company-wide documents


class DeliveryError(Exception):
    """The chat platform refused a post or could not be reached after retries; retry later."""


class MembersUnreadable(Exception):
    """The platform answered but will not list the conversation's members (a missing scope,
    the bot removed): nobody can be identified, so the answer fails closed."""


POSTED_MEMORY_SECONDS = 7 * 86400
RECORD_RETRY_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class PostedMessages:
    """The messages an answer's earlier runs posted, so a task that runs again edits them
    instead of posting them twice. Without a store (`kv` None) nothing is remembered.

    The store failing is a delivery failure: retried like the platform failing, since posting
    without this record could post the answer twice.
    """

    def __init__(self, kv: KeyValue | None, question_id: str) -> None:
        self._kv = kv
        self._key = f"posted:{question_id}"
        try:
            self._ids: list[str | None] = json.loads(kv.get(self._key) or "[]") if kv else []
        except StoreUnavailable as exc:
            raise DeliveryError(str(exc)) from exc

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
        # The message is out: forgetting it now would post it again on the next attempt, so
        # the record is retried for as long as the task would retry delivery.
        for delay in (*RECORD_RETRY_SECONDS, None):
            try:
                self._kv.put(self._key, json.dumps(self._ids), POSTED_MEMORY_SECONDS)
                return
            except StoreUnavailable as exc:
                if delay is None:
                    raise DeliveryError(str(exc)) from exc
                time.sleep(delay)


class AnswerStream(Protocol):
    """An answer shown while it is written, then replaced by the checked answer."""

    def begin(self) -> None:
        """The question is being worked on (before retrieval); best effort, never raises."""
        ...

    def write(self, text: str) -> None:
        """More text as the model writes it; best effort, never raises."""
        ...

    def finish(self, answer: Answer, view: View) -> None:
        """The checked answer takes the place of what was streamed."""
        ...

    def fail(self, notice: str) -> None:
        """A notice takes the place of what was streamed."""
        ...


class ChatThread(Protocol):
    @property
    def question_id(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def conversation(self) -> str:
        """Where the thread lives, for per-conversation settings and caps."""
        ...

    @property
    def revisable(self) -> bool:
        """Whether its answer can be edited later (when a cited source changes)."""
        ...

    @property
    def where(self) -> str:
        """Where it was asked, as owners read it in `gaps` (`<#C123>`, "a DM")."""
        ...

    def view(self, rules: ViewRules) -> View:
        """Whose documents the reply may draw on: everyone who can read the reply."""
        ...

    def history(self) -> list[Turn]:
        """Earlier turns of the conversation, oldest first."""
        ...

    def stream(self) -> AnswerStream | None:
        """Where to stream this question's answer; None where the platform cannot."""
        ...

    def post_answer(self, answer: Answer, view: View, note: str | None = None) -> None:
        """Replace the placeholder with the answer (idempotent: a re-run edits, never re-posts),
        saying whose view it is. A `note` marks a later revision of an answer already posted."""
        ...

    def post_follow_up(
        self, answer: Answer, view: View, heading: str, key: str, note: str | None = None
    ) -> None:
        """A further answer in the thread under `heading`, remembered under `key`: posting it
        again with the same key edits it."""
        ...

    def post_private(self, answer: Answer) -> None:
        """The asker's private add-on, where only the asker can see it (at most once)."""
        ...

    def post_notice(self, text: str, new_message: bool = False) -> None:
        """A short apology or status in place of an answer; `new_message` leaves the
        placeholder alone (when editing it is what keeps failing)."""
        ...
