"""How fresh a source is, in words a reader takes in at a glance ("updated 3 days ago")."""

from __future__ import annotations

from datetime import UTC, datetime


def age_text(updated_at: datetime, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    seconds = max((now - updated_at).total_seconds(), 0)
    for unit, size in (
        ("year", 365 * 86400),
        ("month", 30 * 86400),
        ("week", 7 * 86400),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
    ):
        if seconds >= size:
            count = int(seconds // size)
            return f"updated {count} {unit}{'s' if count != 1 else ''} ago"
    return "updated just now"
