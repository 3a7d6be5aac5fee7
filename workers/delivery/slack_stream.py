"""An answer streamed into its Slack thread as the model writes it.

The first text starts a stream (`chat.startStream`) in the thread and the "Searching…"
placeholder is deleted, so one message grows where the answer will be; more text is appended at
most every quarter second (`chat.appendStream`). When the answer is checked, the stream is
stopped and the message replaced by the checked answer (citations validated, Sources, feedback
buttons): what stays is exactly what the non-streaming path would have posted.

Exactly once: the stream's message is remembered under the question as soon as it exists, so
a task that runs again (a redelivery after a worker died mid-stream) starts no second stream;
it stops the first one, if still open, and replaces it with the answer. Streaming is a preview:
when Slack refuses a streaming call, the stream stops growing and the final answer is posted as
without streaming.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from workers.delivery.chat import PostedMessages
from workers.delivery.render import SlackMessage, slack_notice
from workers.delivery.slack import SlackDelivery, SlackDeliveryError
from workers.delivery.slack_question import SlackQuestion
from workers.rag.answer import Answer
from workers.readers import View

log = logging.getLogger(__name__)

APPEND_EVERY_SECONDS = 0.25
STREAM_TEXT_LIMIT = 12_000  # characters Slack takes in one streaming call
# The stream is gone or already closed: nothing to stop.
ALREADY_CLOSED = frozenset({"message_not_in_streaming_state", "message_not_found"})

Render = Callable[[Answer, View], list[SlackMessage]]


class SlackAnswerStream:
    def __init__(
        self,
        delivery: SlackDelivery,
        question: SlackQuestion,
        render: Render,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delivery = delivery
        self.question = question
        self.render = render
        self.clock = clock
        self.posted = PostedMessages(delivery.kv, question.question_id)
        self.earlier = self.posted.target(0, None)  # what an earlier run of the task posted
        self.ts: str | None = None
        self.appends = 0
        self._pending = ""
        self._last_call = 0.0
        self._broken = False

    def begin(self) -> None:
        """The placeholder already says the docs are being searched."""

    def write(self, text: str) -> None:
        """More of the answer: shown now or with the next append. Never raises."""
        if self.earlier or self._broken:
            return
        self._pending += text
        if self.ts is None:
            self._start()
        elif self.clock() - self._last_call >= APPEND_EVERY_SECONDS:
            self._append()

    def finish(self, answer: Answer, view: View) -> None:
        """Replace whatever was streamed with the checked answer (raises DeliveryError)."""
        self._close_and_replace(self.render(answer, view))

    def fail(self, notice: str) -> None:
        """The answer could not be written: the notice takes the stream's place."""
        self._close_and_replace([slack_notice(notice)])

    def _start(self) -> None:
        question = self.question
        recipient = (
            {}
            if question.is_direct
            else {
                "recipient_team_id": question.team_id,
                "recipient_user_id": question.user_id,
            }
        )
        try:
            started = self.delivery.call(
                "chat.startStream",
                channel=question.channel_id,
                thread_ts=question.thread_ts,
                markdown_text=self._take(),
                **recipient,
            )
        except SlackDeliveryError as exc:
            log.warning("no stream for %s: %s", question.question_id, exc)
            self._broken = True
            return
        self.ts = str(started.get("ts") or "")
        self.posted.record(0, self.ts)  # before anything else: a re-run must find it
        self._last_call = self.clock()
        if question.placeholder_ts:
            try:
                self.delivery.call(
                    "chat.delete", channel=question.channel_id, ts=question.placeholder_ts
                )
            except SlackDeliveryError as exc:
                log.info("placeholder of %s stays: %s", question.question_id, exc)

    def _append(self) -> None:
        try:
            self.delivery.call(
                "chat.appendStream",
                channel=self.question.channel_id,
                ts=self.ts,
                markdown_text=self._take(),
            )
            self.appends += 1
        except SlackDeliveryError as exc:
            log.warning("stream of %s stopped growing: %s", self.question.question_id, exc)
            self._broken = True
        self._last_call = self.clock()

    def _take(self) -> str:
        text, self._pending = self._pending[:STREAM_TEXT_LIMIT], self._pending[STREAM_TEXT_LIMIT:]
        return text

    def _close_and_replace(self, messages: list[SlackMessage]) -> None:
        target = self.ts or self.earlier
        if target:
            try:
                self.delivery.call("chat.stopStream", channel=self.question.channel_id, ts=target)
            except SlackDeliveryError as exc:
                if exc.error not in ALREADY_CLOSED:
                    raise
        # The stream's message (remembered as the answer's first) is edited into the answer.
        self.delivery.deliver(self.question, messages, remember=True)
