"""The shared store's contract, on Redis and in memory (the store without Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from workers.kv import KeyValue, MemoryKeyValue, RedisKeyValue


@pytest.fixture(params=["redis", "memory"])
def kv(request: pytest.FixtureRequest, redis_db: str) -> Iterator[KeyValue]:
    if request.param == "redis":
        yield RedisKeyValue(redis.Redis.from_url(redis_db))
    else:
        yield MemoryKeyValue()


def test_a_kept_log_holds_its_newest_entries_oldest_first(kv: KeyValue) -> None:
    assert kv.recent("log") == []
    for n in range(7):
        kv.log("log", f"entry {n}", keep=5)
    assert kv.recent("log") == [f"entry {n}" for n in range(2, 7)]
    kv.append("other", "x")
    assert kv.recent("log")[-1] == "entry 6", "lists are kept apart"


def test_values_many_at_once_and_deletion(kv: KeyValue) -> None:
    kv.put("a", "1", 60)
    kv.put("b", "2", 60)
    assert kv.get_many(["a", "missing", "b"]) == ["1", None, "2"]
    kv.delete("a")
    assert kv.get("a") is None
