"""Hands work to the workers: through Redis to Celery, or in-process when there is no Redis.

The front door never runs the pipeline on its event loop: in-process mode runs tasks on one
background thread (the embedded index is single-process and this keeps it single-threaded).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from workers.celery_app import app
from workers.settings import Settings

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, settings: Settings) -> None:
        self.in_process = settings.redis_url is None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragbot-task")
        if self.in_process:
            import workers.tasks  # noqa: F401  (registers the tasks for eager runs)

    async def send(self, task: str, *args: Any) -> None:
        loop = asyncio.get_running_loop()
        if self.in_process:
            future = loop.run_in_executor(self._pool, self._run_here, task, args)
            future.add_done_callback(_log_failure)
            return
        # Queues come from the app's task_routes.
        await loop.run_in_executor(None, lambda: app.send_task(task, args=list(args)))

    @staticmethod
    def _run_here(task: str, args: tuple[Any, ...]) -> None:
        app.tasks[task].apply(args=list(args), throw=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("in-process task failed: %s", future.exception().__class__.__name__)
