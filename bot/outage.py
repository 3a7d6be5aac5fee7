"""During an outage each question is told once that it cannot be taken, not once per retry.

Slack and Teams re-deliver what they think went unanswered; while Redis is down the usual
idempotency claim cannot be made, so this front door remembers, in its own memory, which
questions it has already told (bounded in size and time).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

REMEMBER_SECONDS = 3600
REMEMBER_AT_MOST = 10_000


class ToldOnce:
    def __init__(self, seconds: float = REMEMBER_SECONDS, at_most: int = REMEMBER_AT_MOST) -> None:
        self._seconds = seconds
        self._at_most = at_most
        self._told: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, *keys: str) -> bool:
        """True if none of `keys` was told before; all of them count as told from now on."""
        now = time.monotonic()
        with self._lock:
            while self._told and (
                len(self._told) >= self._at_most or next(iter(self._told.values())) < now
            ):
                self._told.popitem(last=False)
            fresh = not any(key in self._told for key in keys)
            for key in keys:
                self._told[key] = now + self._seconds
                self._told.move_to_end(key)
            return fresh
