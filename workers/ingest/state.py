"""Per-source sync state: checkpoints, last success, last error, skipped items.

Kept in Redis when `REDIS_URL` is set (shared by every worker), otherwise in one JSON file under
the data dir. Writes are atomic in both: a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redis

from connectors.base import Checkpoint


class StateUnavailable(Exception):
    """The state store could not be read or written."""


@dataclass
class SourceState:
    """What `ragbot status` reports for a source, besides the index's own counts."""

    checkpoint: str | None = None
    last_success_at: str | None = None
    last_attempt_at: str | None = None
    last_error: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    # Reader email -> the source's group principals they hold; refreshed by each deletion check.
    memberships: dict[str, list[str]] = field(default_factory=dict)
    # A running sync's `SyncProgress`, saved every few seconds; None when none runs.
    progress: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, raw: str | bytes | None) -> SourceState:
        if not raw:
            return cls()
        data: dict[str, Any] = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)


class StateStore(Protocol):
    def load(self, source: str) -> SourceState: ...

    def save(self, source: str, state: SourceState) -> None: ...

    def sources(self) -> list[str]: ...


def checkpoint_of(source: str, state: SourceState) -> Checkpoint | None:
    return Checkpoint(source, state.checkpoint) if state.checkpoint is not None else None


class FileStateStore:
    """One JSON file; replaced atomically on every save."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read_all(self) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self.path.read_text(encoding="utf-8"))
            return data
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StateUnavailable(f"sync state at {self.path} is unreadable: {exc}") from exc

    def load(self, source: str) -> SourceState:
        return SourceState.from_json(self._read_all().get(source))

    def save(self, source: str, state: SourceState) -> None:
        with self._lock:
            data = self._read_all()
            data[source] = state.to_json()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)

    def sources(self) -> list[str]:
        return sorted(self._read_all())


class RedisStateStore:
    """One hash in Redis, field per source."""

    def __init__(self, client: redis.Redis, key: str = "ragbot:sync-state") -> None:
        self._client = client
        self._key = key

    def load(self, source: str) -> SourceState:
        try:
            raw = self._client.hget(self._key, source)
        except redis.RedisError as exc:
            raise StateUnavailable(f"Redis is unreachable: {exc}") from exc
        return SourceState.from_json(raw)

    def save(self, source: str, state: SourceState) -> None:
        try:
            self._client.hset(self._key, source, state.to_json())
        except redis.RedisError as exc:
            raise StateUnavailable(f"Redis is unreachable: {exc}") from exc

    def sources(self) -> list[str]:
        try:
            keys = self._client.hkeys(self._key)
        except redis.RedisError as exc:
            raise StateUnavailable(f"Redis is unreachable: {exc}") from exc
        return sorted(k.decode() if isinstance(k, bytes) else str(k) for k in keys)
