"""The shared store's contract: on Redis, in a local SQLite file (the store without Redis) and
in memory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from workers.kv import KeyValue, MemoryKeyValue, RedisKeyValue
from workers.local_kv import LocalKeyValue


@pytest.fixture(params=["redis", "local", "memory"])
def kv(request: pytest.FixtureRequest, redis_db: str, tmp_path: Path) -> Iterator[KeyValue]:
    if request.param == "redis":
        yield RedisKeyValue(redis.Redis.from_url(redis_db))
    elif request.param == "local":
        store = LocalKeyValue(tmp_path / "store.sqlite3")
        yield store
        store.close()
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


def test_claims_values_and_sets_expire(kv: KeyValue) -> None:
    assert kv.claim("question", 1) and not kv.claim("question", 1)
    kv.put("short", "v", 1)
    kv.add_member("channel", "dana", 1)
    assert kv.get("short") == "v" and kv.members("channel") == {"dana"}
    time.sleep(2.1)
    assert kv.get("short") is None and kv.members("channel") == set()
    assert kv.claim("question", 60), "an expired claim can be taken again"


def test_sets_lose_members_and_keys_are_deleted_whole(kv: KeyValue) -> None:
    kv.add_member("channel", "dana", 60)
    kv.add_member("channel", "kim", 60)
    kv.remove_member("channel", "kim")
    assert kv.members("channel") == {"dana"}
    kv.delete("channel")
    assert kv.members("channel") == set()


def test_without_redis_what_admins_set_outlives_the_process(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    first = LocalKeyValue(path)
    first.put("curation:hidden", "https://wiki/old-policy", 3600)
    first.log("gaps", "parking permit", keep=100)
    first.add_member("members:C0HR", "dana", 3600)
    assert first.claim("slack:event:Ev1", 3600)
    first.close()

    restarted = LocalKeyValue(path)
    assert restarted.get("curation:hidden") == "https://wiki/old-policy"
    assert restarted.recent("gaps") == ["parking permit"]
    assert restarted.members("members:C0HR") == {"dana"}
    assert not restarted.claim("slack:event:Ev1", 3600), "a retried event is still a duplicate"
    restarted.close()
