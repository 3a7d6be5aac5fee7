"""A task still running is never handed to a second worker, however long it runs.

Celery on Redis makes a delivered, unacknowledged message visible again once it has been out
for the visibility timeout: that is how a killed worker's question finds another worker. But a
live worker's long task (a slow chat model, a question waiting behind nine others) would be
handed out again too, and answered twice. So each worker refreshes the delivery time of every
message it holds, a few times per visibility timeout, in the broker's own index of unacked
messages (kombu's `unacked_index`, the sorted set its restore sweep reads). A killed worker
stops refreshing, and its messages come back after the visibility timeout as before.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

log = logging.getLogger(__name__)

UNACKED_INDEX = "unacked_index"  # kombu's Redis transport default


class Heartbeat:
    def __init__(self, client: redis.Redis, visibility_seconds: float) -> None:
        self._client = client
        self._every = max(visibility_seconds / 4, 0.5)
        self._tags: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, delivery_tag: str) -> None:
        """Keep this message invisible until it is acknowledged (or this process dies)."""
        with self._lock:
            self._tags.add(delivery_tag)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ragbot-heartbeat", daemon=True
                )
                self._thread.start()

    def beat(self) -> None:
        """Refresh every held message; forget those acknowledged since (no longer indexed)."""
        with self._lock:
            tags = sorted(self._tags)
        if not tags:
            return
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        for tag in tags:
            # XX: only messages still unacked; CH: report whether each one was there.
            pipe.zadd(UNACKED_INDEX, {tag: now}, xx=True, ch=True)
        held = pipe.execute()
        with self._lock:
            self._tags -= {tag for tag, still in zip(tags, held, strict=True) if not still}

    def _run(self) -> None:
        while True:
            time.sleep(self._every)
            try:
                self.beat()
            except redis.RedisError as exc:  # the broker is down: nothing to refresh anyway
                log.warning("heartbeat skipped: %s", exc.__class__.__name__)
