"""Answers in Teams shown while the model writes them.

Personal chats stream (Teams streams one-on-one chats only): an informative update ("Searching
the docs…") starts the stream as the worker begins and the placeholder is deleted; the model's
text follows as streaming updates carrying all the text so far with a rising sequence number,
the first at once and then at most one a second (well inside Teams' seven messages a second
per conversation); the checked answer (citations, feedback) is the stream's final message.
Channels and group chats cannot stream: the placeholder is edited with the text so far at most
every 1.5 s, then replaced by the checked answer.

Exactly once: the stream's id is remembered under the question as soon as it exists (it is the
final message's id too), so a task that runs again starts no second stream; it closes the first
with the final message or, when Teams has already closed it (finished, timed out after two
minutes, stopped by the user), edits that message into the answer. Updates are a preview: when
Teams refuses one, the text stops growing and the final answer is posted as without streaming.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from workers.delivery.chat import PostedMessages
from workers.delivery.render import TeamsMessage, teams_notice
from workers.delivery.teams import TeamsDelivery
from workers.delivery.teams_question import TeamsQuestion
from workers.delivery.teams_service import TeamsServiceError
from workers.rag.answer import Answer
from workers.readers import View

log = logging.getLogger(__name__)

STREAM_EVERY_SECONDS = 1.0
PLACEHOLDER_EVERY_SECONDS = 1.5
SEARCHING = "Searching the docs…"

Render = Callable[[Answer, View], list[TeamsMessage]]
Posted = Callable[[list[str], Answer], None]


class TeamsAnswerStream:
    def __init__(
        self,
        delivery: TeamsDelivery,
        question: TeamsQuestion,
        render: Render,
        posted: Posted,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delivery = delivery
        self.question = question
        self.render = render
        self.on_posted = posted
        self.clock = clock
        self.personal = question.is_personal
        self.every = STREAM_EVERY_SECONDS if self.personal else PLACEHOLDER_EVERY_SECONDS
        self.posted = PostedMessages(delivery.kv, question.question_id)
        self.earlier = self.posted.target(0, None)  # what an earlier run of the task posted
        self.stream_id: str | None = None
        self.sequence = 0
        self.updates = 0
        self.text = ""
        self._last = 0.0
        self._broken = bool(self.earlier)

    def begin(self) -> None:
        """Personal chats: the stream starts with an informative update while retrieving."""
        if not self.personal or self._broken:
            return
        try:
            self.stream_id = self.delivery.stream_update(
                self.question, None, 1, SEARCHING, informative=True
            )
        except TeamsServiceError as exc:
            log.warning("no stream for %s: %s", self.question.question_id, exc)
            self._broken = True
            return
        self.sequence = 1
        self.posted.record(0, self.stream_id)  # before anything else: a re-run must find it
        self._last = self.clock()
        if self.question.placeholder_id:
            try:
                self.delivery.delete(self.question, self.question.placeholder_id)
            except TeamsServiceError as exc:
                log.info("placeholder of %s stays: %s", self.question.question_id, exc)

    def write(self, text: str) -> None:
        """More of the answer, shown with the next update. Never raises."""
        self.text += text
        first_text = self.personal and self.sequence == 1  # shown at once, then paced
        if self._broken or (not first_text and self.clock() - self._last < self.every):
            return
        try:
            if self.personal and self.stream_id:
                self.sequence += 1
                self.delivery.stream_update(self.question, self.stream_id, self.sequence, self.text)
            elif not self.personal and self.question.placeholder_id:
                preview = TeamsMessage(f"{self.text} …", [])
                self.delivery.edit(self.question, self.question.placeholder_id, preview)
            else:
                return
            self.updates += 1
        except TeamsServiceError as exc:
            log.warning("answer of %s stopped growing: %s", self.question.question_id, exc)
            self._broken = True
        self._last = self.clock()

    def finish(self, answer: Answer, view: View) -> None:
        """The checked answer takes the stream's (or the placeholder's) place."""
        self.on_posted(self._close(self.render(answer, view)), answer)

    def fail(self, notice: str) -> None:
        self._close([teams_notice(notice)])

    def _close(self, messages: list[TeamsMessage]) -> list[str]:
        stream = self.stream_id or (self.earlier if self.personal else None)
        if stream and len(messages) == 1:
            try:
                self.delivery.stream_final(self.question, stream, messages[0])
                return [stream]
            except TeamsServiceError as exc:
                if exc.status not in (400, 403, 404):
                    raise
                log.info("stream of %s closed already (%s): editing it", self.question, exc)
        # Not streamed, closed already, or several messages: the remembered ones are edited.
        return self.delivery.post(self.question, messages, remember=True)
