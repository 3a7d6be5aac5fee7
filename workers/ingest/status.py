"""Per-source health: what `ragbot status` and the admin commands report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workers.freshness import age_text
from workers.ingest.progress import SyncProgress
from workers.ingest.state import StateStore
from workers.rag.index import Index


@dataclass(frozen=True)
class SourceStatus:
    source: str
    documents: int
    chunks: int
    last_success_at: str | None
    last_error: str | None
    skipped: dict[str, str]
    progress: dict[str, Any] | None = None  # a running sync's, when it is current

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "documents": self.documents,
            "chunks": self.chunks,
            "last_success_at": self.last_success_at,
            "last_error": self.last_error,
            "skipped": self.skipped,
            "progress": self.progress,
        }

    def lines(self, now: datetime | None = None) -> list[str]:
        """Human-readable: one summary line, then the last error and skipped items."""
        when = "never synced"
        if self.last_success_at:
            synced = datetime.fromisoformat(self.last_success_at)
            when = age_text(synced, now or datetime.now(UTC)).replace("updated", "synced")
        out = [f"{self.source}: {self.documents} documents, {self.chunks} chunks, {when}"]
        running = SyncProgress.from_json(self.progress)
        if running is not None and running.is_current():
            out.append(f"  {running.line()}")
        if self.last_error:
            out.append(f"  last error: {self.last_error}")
        out += [f"  skipped {item}: {reason}" for item, reason in sorted(self.skipped.items())]
        return out


def source_statuses(sources: list[str], index: Index, state: StateStore) -> list[SourceStatus]:
    """Status of the given sources plus any the state store remembers."""
    rows = []
    for name in sorted(set(sources) | set(state.sources())):
        saved = state.load(name)
        stats = index.stats(name)
        rows.append(
            SourceStatus(
                source=name,
                documents=stats.documents,
                chunks=stats.chunks,
                last_success_at=saved.last_success_at,
                last_error=saved.last_error,
                skipped=dict(saved.skipped),
                progress=saved.progress,
            )
        )
    return rows
