"""Hands work to the workers: through Redis to Celery, or in-process when there is no Redis.

The front door never runs the pipeline on its event loop: in-process mode runs tasks on a pool
of background threads (`RAGBOT_WORKER_THREADS`), as a worker does, sharing one index handle.
A task asking to be retried runs again after its countdown, as a worker would run it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from celery.exceptions import Retry

from workers.celery_app import configure
from workers.settings import Settings

log = logging.getLogger(__name__)

WAITING_DEADLINE_SECONDS = 0.5


class Dispatcher:
    def __init__(self, settings: Settings) -> None:
        self.app = configure(settings)
        self.in_process = settings.redis_url is None
        self._pool = ThreadPoolExecutor(
            max_workers=settings.ragbot_worker_threads, thread_name_prefix="ragbot-task"
        )
        if self.in_process:
            import workers.tasks  # noqa: F401  (registers the tasks for eager runs)

    async def warm(self, _: object = None) -> None:
        """Connects to the broker at start, so the first questions do not pay for loading the
        transport and opening its connections. A broker that is down now is no reason not to
        start: questions asked meanwhile get the queue-down notice."""
        if self.in_process:
            return

        def connect() -> None:
            with self.app.producer_or_acquire() as producer:
                producer.connection.ensure_connection(max_retries=1)

        try:
            await asyncio.get_running_loop().run_in_executor(None, connect)
        except Exception as exc:
            log.warning("the task queue is not reachable yet: %s", exc.__class__.__name__)

    async def send(self, task: str, *args: Any) -> None:
        loop = asyncio.get_running_loop()
        if self.in_process:
            future = loop.run_in_executor(self._pool, self._run_here, task, args)
            future.add_done_callback(_log_failure)
            return
        # Queues come from the app's task_routes.
        await loop.run_in_executor(None, lambda: self.app.send_task(task, args=list(args)))

    async def waiting(self, queue: str) -> int | None:
        """Tasks waiting on `queue` for a worker; None when unknown (in-process, or the broker
        not answering)."""
        if self.in_process:
            return None

        def size() -> int:
            with self.app.connection_or_acquire() as connection:  # from the pool, not a new one
                return int(connection.default_channel.client.llen(queue))

        try:
            return await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(None, size), WAITING_DEADLINE_SECONDS
            )
        except Exception as exc:
            log.info("queue length unknown: %s", exc.__class__.__name__)
            return None

    def _run_here(self, task: str, args: tuple[Any, ...], retries: int = 0) -> None:
        try:
            self.app.tasks[task].apply(args=list(args), retries=retries, throw=True)
        except Retry as retry:
            delay = float(retry.when) if isinstance(retry.when, int | float) else 0.0
            timer = threading.Timer(delay, self._run_later, (task, args, retries + 1))
            timer.daemon = True
            timer.start()

    def _run_later(self, task: str, args: tuple[Any, ...], retries: int) -> None:
        try:
            future = self._pool.submit(self._run_here, task, args, retries)
        except RuntimeError:  # shutting down
            log.warning("in-process retry of %s dropped at shutdown", task)
            return
        future.add_done_callback(_log_thread_failure)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _log_thread_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("in-process task failed: %s", future.exception().__class__.__name__)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("in-process task failed: %s", future.exception().__class__.__name__)
