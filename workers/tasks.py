"""Thin Celery tasks: take ids and text, call plain functions, own retries.

A worker process keeps one `WorkerContext` (index, models, chat clients) for its lifetime.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import AbstractContextManager
from functools import cached_property
from typing import Any

import httpx
import redis
from celery.exceptions import SoftTimeLimitExceeded

from workers import jobs
from workers.answer_records import AnswerRecords, posted_answer
from workers.answer_upkeep import AnswerUpkeep, UpkeepRules
from workers.celery_app import app, configured_settings
from workers.chat_answer import Outcome, PatientThread, answer_in_thread
from workers.curation_store import load_curation
from workers.delivery.chat import ChatThread, DeliveryError, ViewRules
from workers.delivery.platforms import Deliveries
from workers.embed_fanout import EmbeddedPayload, embed_batch
from workers.gap_log import (
    DIGEST_DAYS,
    GAPS_FAILED,
    QUESTION_CHARS,
    UNANSWERED,
    digest_targets,
    record_gap,
)
from workers.ingest.sync import SyncFailed
from workers.knowledge_gaps import gaps_report
from workers.kv import KeyValue, RedisKeyValue, StoreUnavailable
from workers.lease import Lease
from workers.local_kv import process_store
from workers.rag.audience import Audience
from workers.rag.embed import EmbeddingError
from workers.rag.index import IndexUnavailable
from workers.rag.llm import LLMError
from workers.readers import org_wide
from workers.runtime import Runtime
from workers.settings import NotConfigured, Settings
from workers.worker_metrics import (
    ANSWER_BUCKETS,
    ANSWER_LATENCY,
    EMBED_SECONDS,
    EMBEDDED_CHUNKS,
    SEARCH_BUCKETS,
    SEARCH_LATENCY,
    SYNC_BUCKETS,
    SYNC_DURATION,
    observation,
)

log = logging.getLogger(__name__)

SLOW_ANSWER = "Sorry, finding this answer took too long. Please try again, or ask more narrowly."
POST_FAILED = "Sorry, something went wrong while posting the answer. Please ask again."
ANSWER_MEMORY_SECONDS = 30 * 86400
# Where an admin command's result goes: a Slack response URL, or {platform: <its question>}.
ReplyTo = str | dict[str, Any] | None
ANSWER_SOFT_LIMIT_SECONDS = 300


class WorkerContext:
    """Everything a worker needs, created on first use and kept for the process's life."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime = Runtime(settings)
        self._local_locks: dict[str, threading.Lock] = {}

    @cached_property
    def redis(self) -> redis.Redis | None:
        return redis.Redis.from_url(self.settings.redis_url) if self.settings.redis_url else None

    @cached_property
    def kv(self) -> KeyValue:
        if self.redis is not None:
            return RedisKeyValue(self.redis)
        return process_store(self.settings.ragbot_data_dir)

    @cached_property
    def answer_records(self) -> AnswerRecords:
        return AnswerRecords(self.kv, self.settings.ragbot_answer_retention_days * 86400)

    @cached_property
    def deliveries(self) -> Deliveries:
        return Deliveries(self.settings, self.kv)

    def sync_lock(self, source: str) -> AbstractContextManager[bool]:
        """Held while a source syncs, across all workers: overlapping runs are skipped. With
        Redis, a lease renewed while the sync runs (a killed worker's frees within a minute)."""
        if self.redis is not None:
            return Lease(self.redis, f"ragbot:lock:sync:{source}")
        local = self._local_locks.setdefault(source, threading.Lock())
        return _HeldLock(local.acquire(blocking=False), local.release)


class _HeldLock(AbstractContextManager[bool]):
    def __init__(self, acquired: bool, release: Any) -> None:
        self.acquired = acquired
        self._release = release

    def __enter__(self) -> bool:
        return self.acquired

    def __exit__(self, *exc: object) -> None:
        if self.acquired:
            self._release()


_context: WorkerContext | None = None
_context_lock = threading.Lock()


def context() -> WorkerContext:
    """This process's context, built from the settings its entry point configured."""
    global _context
    settings = configured_settings()
    with _context_lock:
        if _context is None or _context.settings is not settings:
            if _context is not None:
                _context.runtime.close()
            _context = WorkerContext(settings)
        return _context


@app.task(
    name=jobs.ANSWER,
    acks_late=True,
    reject_on_worker_lost=True,
    # Enforced by process pools only; on threads each step has its own timeout instead.
    soft_time_limit=ANSWER_SOFT_LIMIT_SECONDS,
    time_limit=ANSWER_SOFT_LIMIT_SECONDS + 10,
)
def answer(platform: str, payload: dict[str, Any]) -> None:
    """Answer one chat question in its thread; delivery is retried with backoff in the task."""
    ctx = context()
    thread = PatientThread(ctx.deliveries.thread(platform, payload))
    started = time.perf_counter()
    try:
        # The conversation's scope and the hidden documents: retried like delivery, since
        # answering without them could show what admins took out of this conversation.
        curation = thread.patiently(lambda: load_curation(ctx.kv, thread.conversation))
        outcome = answer_in_thread(
            thread,
            ctx.runtime.answer_service,
            ViewRules(
                ctx.runtime.reader,
                ctx.settings.ragbot_org_domains,
                ctx.settings.ragbot_channel_max_members,
            ),
            ctx.settings.ragbot_private_addon,
            curation,
        )
    except SoftTimeLimitExceeded:
        _notify_quietly(thread.inner, SLOW_ANSWER)
        _count(ctx, "answers:too_slow")
        return
    except DeliveryError as exc:
        log.error("giving up on %s: %s", thread.question_id, exc)
        _notify_quietly(thread.inner, POST_FAILED, new_message=True)
        _count(ctx, f"answers:{platform}_failed")
        return
    seconds = time.perf_counter() - started
    amounts = {
        f"answers:{outcome.kind}": 1.0,
        "answer_seconds:sum": seconds,
        "answer_seconds:count": 1.0,
    } | observation(ANSWER_LATENCY, (platform, outcome.kind), seconds, ANSWER_BUCKETS)
    if outcome.view is not None:  # whose documents: e.g. how often a member was unresolved
        amounts[f"views:{outcome.view.scope}:{outcome.view.reason or 'none'}"] = 1.0
    if outcome.answer is not None:
        searched = outcome.answer.search_seconds
        amounts |= observation(SEARCH_LATENCY, (platform,), searched, SEARCH_BUCKETS)
    _observe(ctx, amounts)  # one round trip for all of the answer's metrics
    if outcome.answer is not None:
        result = outcome.answer
        where = thread.where  # a Teams channel's name may take a call to Teams
        record = {
            "sources": [s.url for s in result.sources],
            "abstained": result.abstained,
            "question": thread.text[:QUESTION_CHARS],  # a 👎 makes it a knowledge gap
            "where": where,
        }
        try:
            ctx.kv.put(f"answer:{thread.question_id}", json.dumps(record), ANSWER_MEMORY_SECONDS)
            if result.abstained:
                record_gap(ctx.kv, thread.text, where, UNANSWERED)
        except StoreUnavailable:
            log.warning("feedback for %s will lack its answer record", thread.question_id)
        if result.sources and outcome.view is not None and thread.revisable:
            _remember_what_it_stood_on(ctx, platform, payload, thread, outcome)


def _remember_what_it_stood_on(
    ctx: WorkerContext, platform: str, payload: dict[str, Any], thread: ChatThread, outcome: Outcome
) -> None:
    """So a later sync that changes a cited document can revisit the answer."""
    assert outcome.answer is not None and outcome.view is not None
    record = posted_answer(
        platform,
        payload,
        thread.question_id,
        thread.conversation,
        thread.text,
        outcome.history,
        outcome.view,
        outcome.answer,
    )
    try:
        ctx.answer_records.save(record)
    except StoreUnavailable:
        log.warning("%s will not be revisited when its sources change", thread.question_id)


def _observe(ctx: WorkerContext, amounts: dict[str, float]) -> None:
    """Metrics are best effort: a store outage must not turn a delivered answer into a failure."""
    try:
        ctx.kv.add_many(amounts)
    except StoreUnavailable:
        log.warning("metrics %s not recorded: the store is unavailable", ", ".join(amounts))


def _count(ctx: WorkerContext, counter: str, amount: float = 1.0) -> None:
    _observe(ctx, {counter: amount})


def _notify_quietly(thread: ChatThread, text: str, new_message: bool = False) -> None:
    try:
        thread.post_notice(text, new_message)
    except (DeliveryError, StoreUnavailable):
        log.error("could not tell %s about a failure", thread.question_id)


@app.task(name=jobs.SYNC_SOURCE, acks_late=False)
def sync_source(
    source: str, full: bool = False, reply_to: ReplyTo = None, prune: bool = True
) -> dict[str, Any]:
    """Returns {"ok": bool, "summary": str}; reports to the admin's chat when asked from one."""
    ctx = context()
    with ctx.sync_lock(source) as acquired:
        if not acquired:
            outcome = {
                "ok": True,
                "summary": f"{source}: a sync is already running; it will pick up these changes.",
            }
        else:
            try:
                connector = ctx.runtime.connector(source)
                prune = prune or connector.listing_is_cheap
                report = ctx.runtime.syncer().sync(connector, full=full, prune=prune)
                outcome = {"ok": True, "summary": report.summary()}
                _observe(
                    ctx,
                    observation(SYNC_DURATION, (source,), report.seconds, SYNC_BUCKETS)
                    | {
                        f"{EMBEDDED_CHUNKS}:{source}": float(report.chunks_embedded),
                        f"{EMBED_SECONDS}:{source}": report.embed_seconds,
                    },
                )
                _revisit_answers(ctx, source)
            except (SyncFailed, NotConfigured) as exc:
                outcome = {"ok": False, "summary": f"{source}: sync failed: {exc}"}
    if reply_to:
        done = "Reindexed" if outcome["ok"] else "Reindexing failed for"
        _report(reply_to, f"{done} {outcome['summary']}")
    return outcome


def _revisit_answers(ctx: WorkerContext, source: str) -> None:
    """Answers citing what the sync changed; a failure is logged, and the next sync retries."""
    settings = ctx.settings
    upkeep = AnswerUpkeep(
        ctx.runtime.index,
        ctx.answer_records,
        ctx.kv,
        ctx.runtime.answer_service,
        lambda platform, payload: PatientThread(ctx.deliveries.thread(platform, payload)),
        UpkeepRules(settings.ragbot_answer_updates, settings.ragbot_answer_updates_per_day),
    )
    try:
        report = upkeep.after_sync(source)
    except (StoreUnavailable, DeliveryError, IndexUnavailable, EmbeddingError, LLMError) as exc:
        log.warning("answers citing %s not revisited: %s", source, exc)
        return
    if report.redacted or report.updated or report.held_back:
        log.info("revisited answers after syncing %s: %s", source, report)


@app.task(name=jobs.EMBED)
def embed(texts: list[str]) -> EmbeddedPayload:
    """One batch of a fanned-out sync; acknowledged when done, so a killed worker's batch is
    embedded by another. Never opens the index."""
    return embed_batch(context().runtime.embedder, texts)


@app.task(name=jobs.SYNC_ALL, acks_late=False)
def sync_all(check_deletions: bool = False) -> list[dict[str, Any]]:
    """The scheduled sync; deletions are checked every time only where listing is cheap."""
    return [
        sync_source(source, prune=check_deletions)
        for source in context().runtime.configured_sources()
    ]


@app.task(name=jobs.ADMIN_STATUS, acks_late=False)
def admin_status(reply_to: ReplyTo = None) -> str:
    rows = context().runtime.statuses()
    text = "\n".join(line for row in rows for line in row.lines()) or "No sources configured."
    if reply_to:
        _report(reply_to, f"```\n{text}\n```")
    return text


@app.task(name=jobs.ADMIN_GAPS, acks_late=False)
def admin_gaps(days: int, reply_to: ReplyTo = None) -> str:
    """`gaps [days]`: the most-asked questions that went unanswered or got a 👎."""
    ctx = context()
    try:
        text = gaps_report(ctx.kv, ctx.runtime.embedder, days)
    except (StoreUnavailable, EmbeddingError) as exc:
        log.warning("gaps report failed: %s", exc)
        text = GAPS_FAILED
    if reply_to:
        _report(reply_to, text)
    return text


@app.task(name=jobs.GAPS_DIGEST, acks_late=False)
def gaps_digest() -> str | None:
    """The weekly knowledge-gaps digest, to the conversation admins chose (`gaps weekly`)."""
    ctx = context()
    try:
        targets = digest_targets(ctx.kv)
        if not targets:
            return None
        text = gaps_report(ctx.kv, ctx.runtime.embedder, DIGEST_DAYS)
    except (StoreUnavailable, EmbeddingError) as exc:
        log.warning("gaps digest skipped: %s", exc)
        return None
    _report(targets, text)
    return text


@app.task(name=jobs.STATUS, acks_late=False)
def status() -> list[dict[str, Any]]:
    """`ragbot status` when the worker owns the index."""
    return [row.to_json() for row in context().runtime.statuses()]


@app.task(name=jobs.ASK, acks_late=False)
def ask(question: str, reader: str | None = None) -> dict[str, object]:
    """`ragbot ask` when the worker owns the index; raises what the CLI explains."""
    ctx = context()
    settings = ctx.settings
    principals = ctx.runtime.reader(reader) if reader else org_wide(settings.ragbot_org_domains)
    curation = load_curation(ctx.kv, None)  # hidden documents stay hidden here too
    answer = ctx.runtime.answer_service().answer(
        question, Audience.of(principals), curation=curation
    )
    return answer.to_json()


def _report(reply_to: str | dict[str, Any], text: str) -> None:
    """Slack admin commands give a response URL; others `{platform: the question that asked}`."""
    if isinstance(reply_to, str):
        _respond(reply_to, text)
        return
    for platform, question in reply_to.items():
        try:
            context().deliveries.notify(platform, question, text)
        except DeliveryError as exc:
            log.warning("%s report failed: %s", platform, exc)


def _respond(response_url: str, text: str) -> None:
    try:
        httpx.post(
            response_url, json={"response_type": "ephemeral", "text": text}, timeout=15
        ).raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("response_url post failed: %s", exc.__class__.__name__)
