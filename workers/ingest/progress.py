"""How far a running sync has got: counts, the rate and, where the source's size is known, an
estimate of the time left. Saved with the source's state every few seconds, so `ragbot status`
and `/ragbot status` can show a sync of hours as it runs, and `ragbot sync` can draw a bar.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

# A progress record older than this belongs to a sync that died: it is not shown.
STALE_SECONDS = 120


@dataclass
class SyncProgress:
    started: float  # Unix time
    expected: int | None  # documents the source is expected to list; None when unknown
    listed: int = 0  # documents seen so far (indexed, unchanged, skipped or deleted)
    indexed: int = 0
    skipped: int = 0
    chunks: int = 0
    updated: float = 0.0

    @property
    def rate(self) -> float:
        """Documents per second so far."""
        elapsed = max(self.updated - self.started, 1e-6)
        return self.listed / elapsed

    @property
    def seconds_left(self) -> float | None:
        if self.expected is None or self.rate <= 0:
            return None
        return max(self.expected - self.listed, 0) / self.rate

    def line(self) -> str:
        """E.g. "syncing: 1,234 of about 5,000 documents (3.2/s, about 20 min left)"."""
        of = f" of about {self.expected:,}" if self.expected else ""
        left = self.seconds_left
        eta = f", about {_duration(left)} left" if left is not None else ""
        skipped = f", {self.skipped:,} skipped" if self.skipped else ""
        return (
            f"syncing: {self.listed:,}{of} documents, {self.indexed:,} indexed{skipped} "
            f"({self.rate:.1f}/s{eta})"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SyncProgress | None:
        if not data:
            return None
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def is_current(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.updated < STALE_SECONDS


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(round(seconds), 1)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
