"""The shared store as the event loop needs it: never blocking, always bounded in time.

Redis calls are blocking; made on the event loop, one hanging Redis would stall every request
(health checks, Slack's 3 s acks, Teams). Here each call runs on a small pool of threads with a
deadline: a hang delays only the requests that need the store, and they fail with
`StoreUnavailable` in about a second instead of waiting for a socket timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from workers.kv import KeyValue, StoreUnavailable

T = TypeVar("T")
DEADLINE_SECONDS = 1.0
THREADS = 8


class AsyncStore:
    def __init__(
        self, kv: KeyValue, deadline: float = DEADLINE_SECONDS, threads: int = THREADS
    ) -> None:
        self.kv = kv
        self._deadline = deadline
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ragbot-store")

    async def claim(self, key: str, ttl_seconds: int) -> bool:
        return await self._run(lambda: self.kv.claim(key, ttl_seconds))

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        await self._run(lambda: self.kv.put(key, value, ttl_seconds))

    async def get(self, key: str) -> str | None:
        return await self._run(lambda: self.kv.get(key))

    async def take(self, bucket: str, capacity: int, per_seconds: float) -> bool:
        return await self._run(lambda: self.kv.take(bucket, capacity, per_seconds))

    async def delete(self, key: str) -> None:
        await self._run(lambda: self.kv.delete(key))

    async def append(self, key: str, value: str) -> None:
        await self._run(lambda: self.kv.append(key, value))

    async def log(self, key: str, value: str, keep: int) -> None:
        await self._run(lambda: self.kv.log(key, value, keep))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, call: Callable[[], T]) -> T:
        future = asyncio.get_running_loop().run_in_executor(self._pool, call)
        try:
            return await asyncio.wait_for(future, self._deadline)
        except TimeoutError as exc:
            raise StoreUnavailable(f"the store did not answer within {self._deadline:g} s") from exc
