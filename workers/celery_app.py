"""The Celery app: queues, routes, reliability settings and the beat schedule.

Without `REDIS_URL` tasks run eagerly in the calling process (same code, no broker).

Reliability: answer tasks are acknowledged only after they finish (`acks_late`) and return to
the queue if their worker dies (`reject_on_worker_lost`); a killed worker's message becomes
visible again after `RAGBOT_TASK_VISIBILITY_SECONDS`, and kombu's restore sweep runs every 5 s,
so a question survives a crash. A live worker keeps the messages it holds invisible with
heartbeats (workers/heartbeat.py), so a slow answer is never handed to a second worker while
the first still runs. Workers run tasks on threads by default (`ragbot worker`). Index tasks are
acknowledged on receipt instead: a sync can run for longer than any sane visibility timeout,
and an interrupted sync is simply resumed from its checkpoint by the next run. Embedding
batches (the `embed` queue) are acknowledged late like answers: a killed embedding worker's
batch goes to another one.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery
from celery.signals import task_received
from kombu.entity import Queue

from workers import jobs
from workers.heartbeat import Heartbeat
from workers.settings import Settings

# The tasks register on this app when `workers.tasks` is imported; it knows no broker until an
# entry point configures it with the one Settings it read.
app = Celery("ragbot", include=["workers.tasks"])
_configured: Settings | None = None


def configure(settings: Settings) -> Celery:
    """Applies a deployment's settings to the app; every entry point calls it before use."""
    global _configured
    _apply(app, settings)
    _configured = settings
    return app


def configured_settings() -> Settings:
    """The settings the app was configured with (tasks build their context from them)."""
    if _configured is None:
        raise RuntimeError("the Celery app is used before an entry point configured it")
    return _configured


def make_celery(settings: Settings) -> Celery:
    """A separate app for one deployment (a benchmark that talks to workers it started)."""
    separate = Celery("ragbot", include=["workers.tasks"])
    _apply(separate, settings)
    return separate


def _apply(app: Celery, settings: Settings) -> None:
    visibility = settings.ragbot_task_visibility_seconds
    app.conf.update(
        task_queues=[Queue(jobs.ANSWER_QUEUE), Queue(jobs.INDEX_QUEUE), Queue(jobs.EMBED_QUEUE)],
        task_default_queue=jobs.ANSWER_QUEUE,
        task_routes={name: {"queue": jobs.INDEX_QUEUE} for name in jobs.INDEX_TASKS}
        | {jobs.EMBED: {"queue": jobs.EMBED_QUEUE}},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
        beat_schedule={
            "sync-all-sources": {
                "task": jobs.SYNC_ALL,
                "schedule": float(settings.ragbot_sync_interval_seconds),
                "kwargs": {"check_deletions": False},
            },
            "check-deletions": {
                "task": jobs.SYNC_ALL,
                "schedule": float(settings.ragbot_deletion_check_seconds),
                "kwargs": {"check_deletions": True},
            },
            "knowledge-gaps-digest": {  # posts only where an admin said `gaps weekly on`
                "task": jobs.GAPS_DIGEST,
                "schedule": float(settings.ragbot_gaps_digest_seconds),
            },
        },
    )
    if settings.redis_url:
        app.conf.broker_url = settings.redis_url
        app.conf.result_backend = settings.redis_url
        heartbeat = Heartbeat(redis.Redis.from_url(settings.redis_url), visibility)

        def hold(sender: Any = None, request: Any = None, **_: Any) -> None:
            tag = getattr(getattr(request, "message", None), "delivery_tag", None)
            if tag:
                heartbeat.hold(str(tag))

        # One hold per process, whichever app configured it first.
        task_received.connect(hold, weak=False, dispatch_uid="ragbot-heartbeat")
    else:
        app.conf.broker_url = "memory://"
        app.conf.task_always_eager = True
        app.conf.task_eager_propagates = True
