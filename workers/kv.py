"""Small shared state with expiry: idempotency claims, thread memory, feedback.

Redis when `REDIS_URL` is set (shared by the front door and every worker); otherwise a SQLite
file in the data directory (`workers/local_kv.py`), enough when one process does everything.
`MemoryKeyValue` is for tests and for what is per process by nature.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import redis

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The shared store (Redis) could not be reached or answered with an error."""


class KeyValue(Protocol):
    def claim(self, key: str, ttl_seconds: int) -> bool:
        """True for the first caller only, until the key expires (SET NX EX)."""
        ...

    def put(self, key: str, value: str, ttl_seconds: int) -> None: ...

    def get(self, key: str) -> str | None: ...

    def append(self, key: str, value: str) -> None:
        """Append to a list that never expires (audit records such as feedback)."""
        ...

    def log(self, key: str, value: str, keep: int) -> None:
        """Append to a list that keeps only its newest `keep` entries."""
        ...

    def recent(self, key: str) -> list[str]:
        """A kept list, oldest first."""
        ...

    def counters(self) -> dict[str, float]: ...

    def add_many(self, amounts: dict[str, float]) -> None:
        """Add to named counters shared by all processes (worker-side metrics), in one round
        trip."""
        ...

    def add_member(self, key: str, member: str, ttl_seconds: int) -> None:
        """Add to a set, which expires `ttl_seconds` after its last addition."""
        ...

    def members(self, key: str) -> set[str]: ...

    def get_many(self, keys: list[str]) -> list[str | None]:
        """Several values in one round trip."""
        ...

    def remove_member(self, key: str, member: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def take(self, bucket: str, capacity: int, per_seconds: float) -> bool:
        """Take one token from a bucket holding up to `capacity`, refilled at `capacity` per
        `per_seconds`; False when it is empty (rate limits shared by every process)."""
        ...


# A token bucket in one atomic step, on Redis's own clock (so every replica agrees).
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or capacity, tonumber(state[2]) or t
tokens = math.min(capacity, tokens + (t - at) * rate)
local taken = 0
if tokens >= 1 then tokens = tokens - 1; taken = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(t))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return taken
"""


class RedisKeyValue:
    """Every Redis failure surfaces as `StoreUnavailable`, so callers can retry or explain."""

    def __init__(self, client: redis.Redis, prefix: str = "ragbot:") -> None:
        self._client = client
        self._prefix = prefix

    @property
    def client(self) -> redis.Redis:
        """The connection itself, for what is not a key of ours (the broker's queue lengths)."""
        return self._client

    def _run(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis is unavailable ({exc.__class__.__name__})") from exc

    def claim(self, key: str, ttl_seconds: int) -> bool:
        return bool(
            self._run(lambda: self._client.set(self._prefix + key, "1", nx=True, ex=ttl_seconds))
        )

    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        self._run(lambda: self._client.set(self._prefix + key, value, ex=ttl_seconds))

    def get(self, key: str) -> str | None:
        value = self._run(lambda: self._client.get(self._prefix + key))
        return value.decode() if isinstance(value, bytes) else None

    def append(self, key: str, value: str) -> None:
        self._run(lambda: self._client.rpush(self._prefix + key, value))

    def log(self, key: str, value: str, keep: int) -> None:
        def add() -> None:
            pipeline = self._client.pipeline(transaction=False)
            pipeline.rpush(self._prefix + key, value)
            pipeline.ltrim(self._prefix + key, -keep, -1)
            pipeline.execute()

        self._run(add)

    def recent(self, key: str) -> list[str]:
        raw = self._run(lambda: self._client.lrange(self._prefix + key, 0, -1))
        return [v.decode() if isinstance(v, bytes) else str(v) for v in raw]

    def add_many(self, amounts: dict[str, float]) -> None:
        def add() -> None:
            pipeline = self._client.pipeline(transaction=False)
            for counter, amount in amounts.items():
                pipeline.hincrbyfloat(self._prefix + "counters", counter, amount)
            pipeline.execute()

        self._run(add)

    def counters(self) -> dict[str, float]:
        raw = self._run(lambda: self._client.hgetall(self._prefix + "counters"))
        return {k.decode(): float(v) for k, v in raw.items()}  # type: ignore[union-attr]

    def add_member(self, key: str, member: str, ttl_seconds: int) -> None:
        def add() -> None:
            pipeline = self._client.pipeline()
            pipeline.sadd(self._prefix + key, member)
            pipeline.expire(self._prefix + key, ttl_seconds)
            pipeline.execute()

        self._run(add)

    def members(self, key: str) -> set[str]:
        raw = self._run(lambda: self._client.smembers(self._prefix + key))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in raw}

    def remove_member(self, key: str, member: str) -> None:
        self._run(lambda: self._client.srem(self._prefix + key, member))

    def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        values = self._run(lambda: self._client.mget([self._prefix + key for key in keys]))
        return [v.decode() if isinstance(v, bytes) else None for v in values]

    def delete(self, key: str) -> None:
        self._run(lambda: self._client.delete(self._prefix + key))

    def take(self, bucket: str, capacity: int, per_seconds: float) -> bool:
        rate = capacity / per_seconds
        taken = self._run(
            lambda: self._client.eval(_TAKE, 1, self._prefix + bucket, capacity, rate)
        )
        return bool(taken)


class MemoryKeyValue:
    def __init__(self) -> None:
        self._values: dict[str, tuple[float, str]] = {}
        self._lists: dict[str, list[str]] = {}
        self._counters: dict[str, float] = {}
        self._sets: dict[str, tuple[float, set[str]]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, when)
        self._lock = threading.Lock()

    def _live(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._values.pop(key, None)
            return None
        return entry[1]

    def claim(self, key: str, ttl_seconds: int) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._values[key] = (time.monotonic() + ttl_seconds, "1")
            return True

    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        with self._lock:
            self._values[key] = (time.monotonic() + ttl_seconds, value)

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def append(self, key: str, value: str) -> None:
        with self._lock:
            self._lists.setdefault(key, []).append(value)

    def log(self, key: str, value: str, keep: int) -> None:
        with self._lock:
            kept = self._lists.setdefault(key, [])
            kept.append(value)
            del kept[:-keep]

    def recent(self, key: str) -> list[str]:
        with self._lock:
            return list(self._lists.get(key, []))

    def add_many(self, amounts: dict[str, float]) -> None:
        with self._lock:
            for counter, amount in amounts.items():
                self._counters[counter] = self._counters.get(counter, 0.0) + amount

    def counters(self) -> dict[str, float]:
        with self._lock:
            return dict(self._counters)

    def add_member(self, key: str, member: str, ttl_seconds: int) -> None:
        with self._lock:
            members = self._sets.get(key)
            if members is None or members[0] < time.monotonic():
                members = (0.0, set())
            self._sets[key] = (time.monotonic() + ttl_seconds, members[1] | {member})

    def members(self, key: str) -> set[str]:
        with self._lock:
            members = self._sets.get(key)
            return set(members[1]) if members and members[0] >= time.monotonic() else set()

    def get_many(self, keys: list[str]) -> list[str | None]:
        with self._lock:
            return [self._live(key) for key in keys]

    def remove_member(self, key: str, member: str) -> None:
        with self._lock:
            if key in self._sets:
                self._sets[key][1].discard(member)

    def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)
            self._sets.pop(key, None)

    def take(self, bucket: str, capacity: int, per_seconds: float) -> bool:
        with self._lock:
            now = time.monotonic()
            tokens, at = self._buckets.get(bucket, (float(capacity), now))
            tokens = min(float(capacity), tokens + (now - at) * capacity / per_seconds)
            taken = tokens >= 1
            self._buckets[bucket] = (tokens - 1 if taken else tokens, now)
            return taken
