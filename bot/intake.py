"""Taking a question, the same on every platform: claim it once, post the placeholder, hand it
to the workers, and say so plainly when that cannot be done.

Platforms redeliver what they think went unanswered (Slack's retries, the `app_mention` and
`message` pair for one message, Teams' re-sends after 15 s): the claim keys name one delivery
and one message, and a question is taken only when all of them are new. Each platform's front
door supplies what differs: its keys, how to post and edit a reply, and its question payload.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot import metrics
from bot.dispatch import Dispatcher
from bot.outage import ToldOnce
from bot.store import AsyncStore
from workers import jobs
from workers.gap_log import GAP_LOG, GAP_LOG_ENTRIES, UNHELPFUL, gap_entry
from workers.settings import Settings

log = logging.getLogger(__name__)

QUEUE_DOWN = (
    "Sorry, I can't take questions right now (my task queue is down). Please try again soon."
)
SLOW_DOWN = (
    "You're asking faster than I can keep up with. Please give me a minute before the next "
    "question."
)
FEEDBACK_LOG = "feedback"
GAP_VOTE_SECONDS = 30 * 86400  # as long as the answer record a vote refers to

Say = Callable[[str], Awaitable[object]]


class Intake:
    def __init__(
        self, platform: str, store: AsyncStore, dispatcher: Dispatcher, settings: Settings
    ) -> None:
        self.platform = platform
        self.store = store
        self.dispatcher = dispatcher
        self.settings = settings
        self.ttl = settings.ragbot_idempotency_ttl_seconds
        self.told = ToldOnce()

    async def claim(self, keys: Sequence[str], say: Say) -> bool:
        """True when every key is new, i.e. this delivery is the question's first. With the
        store down nothing can be claimed: the asker is told once (`say`) and False returned."""
        try:
            fresh = [await self.store.claim(key, self.ttl) for key in keys]
        except Exception as exc:  # Redis is down: no way to answer exactly once, so say so
            log.error("idempotency store unavailable: %s", exc.__class__.__name__)
            metrics.ERRORS.labels(self.platform, "claim").inc()
            if self.told.first_time(*keys):
                await say(QUEUE_DOWN)
            return False
        if not all(fresh):
            metrics.DUPLICATES.labels(self.platform).inc()
            return False
        return True

    async def fair_use(self, person: str, conversation: str, say: Say) -> bool:
        """True while the person and the conversation ask within their per-minute limits;
        otherwise the person is told (once a minute) and False returned. A store that cannot
        say lets the question through: the claim before this one already needed it."""
        settings = self.settings
        try:
            allowed = await self.store.take(
                f"fair:person:{self.platform}:{person}", settings.ragbot_questions_per_minute, 60
            ) and await self.store.take(
                f"fair:conversation:{self.platform}:{conversation}",
                settings.ragbot_conversation_questions_per_minute,
                60,
            )
        except Exception as exc:
            log.warning("fair use not checked: %s", exc.__class__.__name__)
            return True
        if allowed:
            return True
        metrics.IGNORED.labels(self.platform, "rate_limited").inc()
        try:
            first = await self.store.claim(f"fair:told:{self.platform}:{person}", 60)
        except Exception:
            first = False
        if first:
            await say(SLOW_DOWN)
        return False

    async def place_in_line(self) -> str:
        """ " (you're number N in line)" when many questions wait for a worker, else ""."""
        waiting = await self.dispatcher.waiting(jobs.ANSWER_QUEUE)
        if waiting is None or waiting + 1 < self.settings.ragbot_queue_position_from:
            return ""
        return f" (you're number {waiting + 1} in line)"

    async def hand_over(
        self,
        question_id: str,
        payload: dict[str, Any],
        kind: str,
        started: float,
        queue_down: Say,
    ) -> bool:
        """Enqueues the answer job. When the queue is down the asker is told (`queue_down`,
        which replaces the placeholder where there is one) instead of left with "Searching…"."""
        try:
            await self.dispatcher.send(jobs.ANSWER, self.platform, payload)
        except Exception as exc:
            log.error("could not enqueue %s: %s", question_id, exc.__class__.__name__)
            metrics.ERRORS.labels(self.platform, "enqueue").inc()
            await queue_down(QUEUE_DOWN)
            return False
        metrics.QUESTIONS.labels(self.platform, kind).inc()
        metrics.ENQUEUE_LATENCY.labels(self.platform).observe(time.perf_counter() - started)
        return True

    async def send(self, say: Say, task: str, *args: Any) -> bool:
        """Hands other work (an admin command's) to the workers; when the queue is down, says
        so through `say`."""
        try:
            await self.dispatcher.send(task, *args)
        except Exception as exc:
            log.error("could not enqueue %s: %s", task, exc.__class__.__name__)
            metrics.ERRORS.labels(self.platform, "enqueue").inc()
            await say(QUEUE_DOWN)
            return False
        return True

    async def record_feedback(
        self, question_id: str, vote: str, user: str | None, comment: str | None = None
    ) -> None:
        """Appends a 👍/👎 to the feedback log with the answer it was given on."""
        answer = await self.store.get(f"answer:{question_id}") if question_id else None
        answered: dict[str, Any] = json.loads(answer) if answer else {}
        record: dict[str, Any] = {
            "platform": self.platform,
            "question_id": question_id,
            "vote": vote,
            "user": user,
            "at": time.time(),
            "answer": answered or None,
        }
        if comment is not None:
            record["comment"] = comment
        await self.store.append(FEEDBACK_LOG, json.dumps(record))
        metrics.FEEDBACK.labels(self.platform, vote).inc()
        question = answered.get("question")
        # A 👎 makes the question a knowledge gap, once per person however often they click.
        if (
            vote == "down"
            and question
            and await self.store.claim(f"gap_vote:{question_id}:{user}", GAP_VOTE_SECONDS)
        ):
            entry = gap_entry(str(question), str(answered.get("where") or ""), UNHELPFUL)
            await self.store.log(GAP_LOG, entry, GAP_LOG_ENTRIES)
