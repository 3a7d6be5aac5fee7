"""The shared store without Redis: a SQLite file in the data directory.

Without Redis one process (`ragbot serve`) answers, runs the tasks and keeps the store, but
what admins set there must outlive it: a hidden document, a channel's scope and the document
preferences, the knowledge-gap log and the digest's target, the answer records that feedback
and revisions need, and the claims that keep a redelivered question from being answered twice
after a restart. So values, lists and sets live in `<data dir>/store.sqlite3`. Rate buckets and
counters stay in memory: they are per process by nature (counters, like Prometheus's, restart
from zero).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from workers.kv import MemoryKeyValue, StoreUnavailable

T = TypeVar("T")

STORE_FILE = "store.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv_values (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL);
CREATE TABLE IF NOT EXISTS kv_lists (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_lists_by_key ON kv_lists (key, seq);
CREATE TABLE IF NOT EXISTS kv_sets (
    key TEXT NOT NULL, member TEXT NOT NULL, expires REAL, PRIMARY KEY (key, member)
);
"""


class LocalKeyValue:
    """`KeyValue` on one SQLite file; safe to share between the threads of a process (and to
    open from another process: SQLite serialises writers)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._memory = MemoryKeyValue()  # rate buckets and counters
        self._run(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
        self._run(lambda: self._db.execute("PRAGMA busy_timeout=5000"))
        self._run(lambda: self._db.executescript(_SCHEMA))

    def _run(self, call: Callable[[], T]) -> T:
        with self._lock:
            try:
                return call()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the local store failed: {exc}") from exc

    def _transaction(self, statements: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = statements(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

        return self._run(run)

    def claim(self, key: str, ttl_seconds: int) -> bool:
        now = time.time()

        def claim(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM kv_values WHERE key = ? AND expires < ?", (key, now))
            taken = db.execute(
                "INSERT OR IGNORE INTO kv_values VALUES (?, '1', ?)", (key, now + ttl_seconds)
            )
            return taken.rowcount == 1

        return self._transaction(claim)

    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        self._run(
            lambda: self._db.execute(
                "INSERT OR REPLACE INTO kv_values VALUES (?, ?, ?)",
                (key, value, time.time() + ttl_seconds),
            )
        )

    def get(self, key: str) -> str | None:
        return self.get_many([key])[0]

    def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        rows = self._run(
            lambda: self._db.execute(
                f"SELECT key, value FROM kv_values WHERE key IN ({marks}) AND expires >= ?",
                (*keys, time.time()),
            ).fetchall()
        )
        found = dict(rows)
        return [found.get(key) for key in keys]

    def append(self, key: str, value: str) -> None:
        self._run(
            lambda: self._db.execute(
                "INSERT INTO kv_lists (key, value) VALUES (?, ?)", (key, value)
            )
        )

    def log(self, key: str, value: str, keep: int) -> None:
        def log(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO kv_lists (key, value) VALUES (?, ?)", (key, value))
            db.execute(
                "DELETE FROM kv_lists WHERE key = ? AND seq NOT IN "
                "(SELECT seq FROM kv_lists WHERE key = ? ORDER BY seq DESC LIMIT ?)",
                (key, key, keep),
            )

        self._transaction(log)

    def recent(self, key: str) -> list[str]:
        rows = self._run(
            lambda: self._db.execute(
                "SELECT value FROM kv_lists WHERE key = ? ORDER BY seq", (key,)
            ).fetchall()
        )
        return [str(value) for (value,) in rows]

    def add_member(self, key: str, member: str, ttl_seconds: int) -> None:
        now = time.time()

        def add(db: sqlite3.Connection) -> None:
            # The set expires as a whole, after its last addition.
            db.execute("DELETE FROM kv_sets WHERE key = ? AND expires < ?", (key, now))
            db.execute("INSERT OR IGNORE INTO kv_sets VALUES (?, ?, ?)", (key, member, 0.0))
            db.execute("UPDATE kv_sets SET expires = ? WHERE key = ?", (now + ttl_seconds, key))

        self._transaction(add)

    def members(self, key: str) -> set[str]:
        rows = self._run(
            lambda: self._db.execute(
                "SELECT member FROM kv_sets WHERE key = ? AND expires >= ?", (key, time.time())
            ).fetchall()
        )
        return {str(member) for (member,) in rows}

    def remove_member(self, key: str, member: str) -> None:
        self._run(
            lambda: self._db.execute(
                "DELETE FROM kv_sets WHERE key = ? AND member = ?", (key, member)
            )
        )

    def delete(self, key: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            for table in ("kv_values", "kv_lists", "kv_sets"):
                db.execute(f"DELETE FROM {table} WHERE key = ?", (key,))

        self._transaction(delete)

    def add_many(self, amounts: dict[str, float]) -> None:
        self._memory.add_many(amounts)

    def counters(self) -> dict[str, float]:
        return self._memory.counters()

    def take(self, bucket: str, capacity: int, per_seconds: float) -> bool:
        return self._memory.take(bucket, capacity, per_seconds)

    def close(self) -> None:
        with self._lock:
            self._db.close()


_stores: dict[Path, LocalKeyValue] = {}
_stores_lock = threading.Lock()


def process_store(data_dir: Path) -> LocalKeyValue:
    """Without Redis, the one store of this process: the front door and the tasks it runs
    in-process see the same claims, membership changes and counters."""
    path = (data_dir / STORE_FILE).resolve()
    with _stores_lock:
        if path not in _stores:
            _stores[path] = LocalKeyValue(path)
        return _stores[path]
