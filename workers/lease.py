"""A Redis lock that lasts exactly as long as its holder.

A sync holds its source's lock so that two workers never sync one source at once. A fixed
timeout is wrong both ways: a killed worker's lock would keep its source from syncing for the
whole timeout, and a first sync longer than the timeout (a large wiki on one CPU) would lose
it half-way. So the lock is a short lease that a thread renews while the holder lives.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager, suppress

import redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0


class Lease(AbstractContextManager[bool]):
    """`with Lease(client, name) as held:` — `held` is False when someone else holds it."""

    def __init__(self, client: redis.Redis, name: str, seconds: float = LEASE_SECONDS) -> None:
        # Not thread-local: the renewing thread must see the token the holder acquired with.
        self._lock = client.lock(name, timeout=seconds, thread_local=False)
        self._name = name
        self._every = seconds / 3
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.acquired = False

    def __enter__(self) -> bool:
        self.acquired = bool(self._lock.acquire(blocking=False))
        if self.acquired:
            self._renewer = threading.Thread(
                target=self._renew, name=f"lease-{self._name}", daemon=True
            )
            self._renewer.start()
        return self.acquired

    def _renew(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._lock.reacquire()
            except LockNotOwnedError:  # expired during a long Redis outage: someone may hold it
                log.warning("lost the lease %s", self._name)
                return
            except RedisError as exc:  # a blip: the lease outlives a few missed renewals
                log.warning("could not renew the lease %s: %s", self._name, exc)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self.acquired:
            with suppress(LockError, RedisError):  # expired or unreachable: it frees itself
                self._lock.release()
