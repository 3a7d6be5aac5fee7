"""Answer one chat question: who may see the reply, what the thread said, the answer, the reply.

A conversation's answer draws only on what all its readers may open; when the asker's own
documents change the answer, the asker alone gets a private add-on after it.
Failures the asker can do nothing about still get a clear message in the thread, never silence.
The platform itself failing (`DeliveryError`) is raised, so the task can retry delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from workers.delivery.chat import (
    AnswerStream,
    ChatThread,
    DeliveryError,
    MembersUnreadable,
    ViewRules,
)
from workers.kv import StoreUnavailable
from workers.rag.answer import Answer, AnswerService
from workers.rag.audience import Audience
from workers.rag.curation import UNCURATED, Curation
from workers.rag.embed import EmbeddingError
from workers.rag.index import IndexUnavailable
from workers.rag.llm import LLMError
from workers.rag.prompt import Turn
from workers.readers import PUBLIC_ONLY, UNRESOLVED, View, public_only

T = TypeVar("T")
# Waits between attempts to reach the chat platform (or the store that remembers what was
# posted): a 429 storm or a Redis blip of up to half a minute delays the answer, never loses it.
DELIVERY_RETRY_SECONDS = (2.0, 4.0, 8.0, 16.0)

log = logging.getLogger(__name__)

INDEX_DOWN = "I couldn't reach the docs index just now. Please try again in a minute."
LLM_DOWN = "I couldn't reach the language model just now. Please try again in a minute."


@dataclass(frozen=True)
class Outcome:
    kind: str  # "answered" | "abstained" | "index_down" | "llm_down"
    answer: Answer | None = None
    view: View | None = None
    history: tuple[Turn, ...] = ()


def answer_in_thread(
    thread: ChatThread,
    service: Callable[[], AnswerService],
    rules: ViewRules,
    private_addon: bool = True,
    curation: Curation = UNCURATED,
) -> Outcome:
    """Answers and replies; a failure of the index or the model is explained in the thread
    (opening the index included: `service` builds the answer service when first needed)."""
    view = _view(thread, rules)
    if view.reason:
        log.info("%s answered from %s documents: %s", thread.question_id, view.scope, view.reason)
    history = thread.history()
    stream: AnswerStream | None = None
    try:
        answerer = service()
        if answerer.writes:  # extractive answers come whole: nothing to stream
            stream = thread.stream()
        if stream is not None:
            stream.begin()
        answer = answerer.answer(
            thread.text, view.audience, history, stream.write if stream else None, curation
        )
    except (IndexUnavailable, EmbeddingError) as exc:
        log.warning("answer %s failed: %s", thread.question_id, exc.__class__.__name__)
        _tell(thread, stream, INDEX_DOWN)
        return Outcome("index_down")
    except LLMError as exc:
        log.warning("answer %s failed: %s", thread.question_id, exc)
        _tell(thread, stream, LLM_DOWN)
        return Outcome("llm_down")
    if stream:
        stream.finish(answer, view)
    else:
        thread.post_answer(answer, view)
    if private_addon and view.asker is not None:
        _add_privately(thread, service(), view, history, curation)
    return Outcome("abstained" if answer.abstained else "answered", answer, view, tuple(history))


def _tell(thread: ChatThread, stream: AnswerStream | None, notice: str) -> None:
    """A notice in the answer's place: over what was streamed, else over the placeholder."""
    if stream is not None:
        stream.fail(notice)
    else:
        thread.post_notice(notice)


def _view(thread: ChatThread, rules: ViewRules) -> View:
    """Whose documents the reply may use; members the platform describes in a way we cannot
    read fail closed, like members we cannot identify (the platform being down is retried)."""
    try:
        return thread.view(rules)
    except DeliveryError:
        raise
    except MembersUnreadable as exc:
        log.warning("%s: %s; public documents only", thread.question_id, exc)
        return View(Audience.of(public_only()), PUBLIC_ONLY, UNRESOLVED)
    except Exception:
        log.exception("%s: members unreadable; public documents only", thread.question_id)
        return View(Audience.of(public_only()), PUBLIC_ONLY, UNRESOLVED)


def _add_privately(
    thread: ChatThread,
    service: AnswerService,
    view: View,
    history: list[Turn],
    curation: Curation,
) -> None:
    """The asker's own answer, to the asker alone, when it cites what the others may not open.

    The public answer is already out; a failure here is logged and the add-on skipped."""
    assert view.asker is not None
    try:
        private = service.private_addon(thread.text, view.asker, view.audience, history, curation)
    except (IndexUnavailable, EmbeddingError, LLMError) as exc:
        log.warning("private add-on for %s skipped: %s", thread.question_id, exc)
        return
    if private is None:
        return
    try:
        thread.post_private(private)
    except (DeliveryError, StoreUnavailable) as exc:  # e.g. the asker left, or no chat with them
        log.warning("private add-on for %s not delivered: %s", thread.question_id, exc)


class PatientStream:
    """A stream whose closing calls are retried like the thread's (writes are best effort)."""

    def __init__(
        self, inner: AnswerStream, patiently: Callable[[Callable[[], None]], None]
    ) -> None:
        self.inner = inner
        self.patiently = patiently

    def begin(self) -> None:
        self.inner.begin()

    def write(self, text: str) -> None:
        self.inner.write(text)

    def finish(self, answer: Answer, view: View) -> None:
        self.patiently(lambda: self.inner.finish(answer, view))

    def fail(self, notice: str) -> None:
        self.patiently(lambda: self.inner.fail(notice))


class PatientThread:
    """A `ChatThread` whose calls are retried with backoff, in the task itself.

    Retrying here (rather than re-queueing the task) keeps the answer already computed, and
    works while the queue's own Redis is the thing that blinked. After the last attempt the
    failure is raised as `DeliveryError`.
    """

    def __init__(
        self, thread: ChatThread, delays: Sequence[float] = DELIVERY_RETRY_SECONDS
    ) -> None:
        self.inner = thread
        self.delays = tuple(delays)

    @property
    def question_id(self) -> str:
        return self.inner.question_id

    @property
    def text(self) -> str:
        return self.inner.text

    @property
    def conversation(self) -> str:
        return self.inner.conversation

    @property
    def revisable(self) -> bool:
        return self.inner.revisable

    @property
    def where(self) -> str:
        return self.inner.where

    def view(self, rules: ViewRules) -> View:
        return self.patiently(lambda: self.inner.view(rules))

    def history(self) -> list[Turn]:
        return self.patiently(self.inner.history)

    def stream(self) -> AnswerStream | None:
        inner = self.patiently(self.inner.stream)  # reads what an earlier run posted
        return PatientStream(inner, self.patiently) if inner else None

    def post_answer(self, answer: Answer, view: View, note: str | None = None) -> None:
        self.patiently(lambda: self.inner.post_answer(answer, view, note))

    def post_follow_up(
        self, answer: Answer, view: View, heading: str, key: str, note: str | None = None
    ) -> None:
        self.patiently(lambda: self.inner.post_follow_up(answer, view, heading, key, note))

    def post_private(self, answer: Answer) -> None:
        """Once: the add-on is a courtesy after the answer (the platform clients still retry
        429s and 5xx); a refusal such as a user who left is not worth a minute of retries."""
        self.inner.post_private(answer)

    def post_notice(self, text: str, new_message: bool = False) -> None:
        self.patiently(lambda: self.inner.post_notice(text, new_message))

    def patiently(self, call: Callable[[], T]) -> T:
        """`call`, again after each delay while the platform or the store fails."""
        for delay in self.delays:
            try:
                return call()
            except (DeliveryError, StoreUnavailable) as exc:
                log.warning("%s: %s; again in %.0f s", self.question_id, exc, delay)
                time.sleep(delay)
        try:
            return call()
        except StoreUnavailable as exc:
            raise DeliveryError(str(exc)) from exc
