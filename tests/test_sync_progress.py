"""A running sync's progress: counts, rate and time left, saved for `ragbot status`."""

from __future__ import annotations

import time
from pathlib import Path

from connectors.files import FilesConnector
from tests.support import HashEmbedder
from workers.ingest.progress import SyncProgress
from workers.ingest.state import FileStateStore
from workers.ingest.status import SourceStatus
from workers.ingest.sync import Syncer
from workers.rag.chunking import Chunker
from workers.rag.index_edge import EdgeIndex
from workers.rag.tokens import counter_for_model


def test_the_rate_and_the_time_left_follow_the_counts() -> None:
    running = SyncProgress(started=1000.0, expected=5000, listed=1200, indexed=1100, updated=1400.0)
    assert running.rate == 3.0 and running.seconds_left == 1266.6666666666667
    assert (
        running.line()
        == "syncing: 1,200 of about 5,000 documents, 1,100 indexed (3.0/s, about 21 min left)"
    )
    unknown = SyncProgress(
        started=1000.0, expected=None, listed=30, indexed=30, skipped=2, updated=1010.0
    )
    assert unknown.line() == "syncing: 30 documents, 30 indexed, 2 skipped (3.0/s)"


def test_a_sync_reports_and_saves_its_progress_and_clears_it_when_done(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(12):
        (docs / f"note-{n}.md").write_text(f"# Note {n}\n\nThe note number {n} says hello.\n")
    embedder = HashEmbedder()
    index = EdgeIndex(tmp_path / "index", embedder.dim)
    state = FileStateStore(tmp_path / "state.json")
    seen: list[tuple[int, int | None]] = []
    saved: list[dict[str, object] | None] = []

    def watch(progress: SyncProgress) -> None:
        seen.append((progress.listed, progress.expected))
        saved.append(state.load("files").progress)

    syncer = Syncer(index, embedder, Chunker(counter_for_model("gpt-4o-mini")), state)
    syncer.sync(FilesConnector(docs), progress=watch)
    assert seen[0] == (0, 12) and seen[-1] == (12, 12), "a first sync of a folder knows its size"
    assert saved[0] is not None and saved[0]["expected"] == 12, "saved for `ragbot status`"
    assert state.load("files").progress is None, "cleared when the sync is done"

    (docs / "note-0.md").write_text("# Note 0\n\nChanged.\n")
    seen.clear()
    syncer.sync(FilesConnector(docs), progress=watch)
    assert seen[-1][1] is None, "an incremental sync cannot know how much changed"
    index.close()


def test_status_shows_a_running_sync_and_not_a_dead_ones() -> None:
    now = time.time()
    running = SyncProgress(started=now - 100, expected=500, listed=200, indexed=190, updated=now)
    row = SourceStatus("confluence", 190, 800, None, None, {}, running.to_json())
    assert row.lines()[1] == f"  {running.line()}"
    dead = SyncProgress(
        started=now - 4000, expected=500, listed=200, indexed=190, updated=now - 3600
    )
    assert len(SourceStatus("confluence", 190, 800, None, None, {}, dead.to_json()).lines()) == 1
