from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from connectors.base import Checkpoint, ConnectorError, Document, PollItem
from connectors.files import FilesConnector
from tests.support import HashEmbedder
from workers.ingest.state import FileStateStore, RedisStateStore, StateStore
from workers.ingest.sync import Syncer, SyncFailed
from workers.rag.chunking import Chunker
from workers.rag.index_edge import EdgeIndex
from workers.rag.tokens import counter_for_model

CHUNKER = Chunker(counter_for_model("gpt-4o-mini"))


@pytest.fixture
def index(tmp_path: Path) -> Iterator[EdgeIndex]:
    idx = EdgeIndex(tmp_path / "index", HashEmbedder.dim)
    yield idx
    idx.close()


def make_syncer(index: EdgeIndex, state: StateStore) -> tuple[Syncer, HashEmbedder]:
    embedder = HashEmbedder()
    return Syncer(index, embedder, CHUNKER, state), embedder


def test_sync_is_incremental_and_follows_edits_and_deletions(
    handbook_copy: Path, index: EdgeIndex, tmp_path: Path
) -> None:
    state = FileStateStore(tmp_path / "state.json")
    syncer, embedder = make_syncer(index, state)
    connector = FilesConnector(handbook_copy)

    first = syncer.sync(connector)
    assert first.indexed == 12 and embedder.passages_embedded == first.chunks_embedded > 12
    documents = set(index.document_versions("files"))
    assert "files:leave-policy.md" in documents and "files:ko/휴가-규정.md" in documents

    embedder.passages_embedded = 0
    second = syncer.sync(connector)
    assert embedder.passages_embedded == 0 and second.indexed == 0

    (handbook_copy / "expenses.md").write_text("# Expenses\n\nHotels: 200 EUR.\n", encoding="utf-8")
    (handbook_copy / "security.md").unlink()
    third = syncer.sync(connector)
    assert third.indexed == 1 and embedder.passages_embedded == 1
    assert third.deleted == 1
    versions = index.document_versions("files")
    assert "files:security.md" not in versions and len(versions) == 11

    embedder.passages_embedded = 0
    full = syncer.sync(connector, full=True)
    assert full.indexed == 11 and embedder.passages_embedded == full.chunks_embedded
    assert state.load("files").last_success_at is not None


def test_checkpoints_live_in_redis_when_configured(
    handbook_copy: Path, index: EdgeIndex, redis_db: str
) -> None:
    client = redis.Redis.from_url(redis_db)
    syncer, _ = make_syncer(index, RedisStateStore(client))
    syncer.sync(FilesConnector(handbook_copy))
    stored = RedisStateStore(redis.Redis.from_url(redis_db)).load("files")
    assert stored.checkpoint is not None and int(stored.checkpoint) > 0
    assert stored.last_success_at is not None and stored.last_error is None


def test_an_outage_leaves_the_index_as_it_was_and_is_reported(
    handbook_copy: Path, index: EdgeIndex, tmp_path: Path
) -> None:
    state = FileStateStore(tmp_path / "state.json")
    syncer, _ = make_syncer(index, state)
    syncer.sync(FilesConnector(handbook_copy))
    before = index.document_versions("files")

    with pytest.raises(SyncFailed, match="not a readable folder"):
        syncer.sync(FilesConnector(tmp_path / "unmounted"), full=True)
    assert index.document_versions("files") == before
    assert "not a readable folder" in (state.load("files").last_error or "")


def test_unreadable_files_are_reported_until_they_are_gone(
    handbook_copy: Path, index: EdgeIndex, tmp_path: Path
) -> None:
    state = FileStateStore(tmp_path / "state.json")
    syncer, _ = make_syncer(index, state)
    (handbook_copy / "broken.pdf").write_bytes(b"%PDF-1.7 garbage")
    report = syncer.sync(FilesConnector(handbook_copy))
    assert report.skipped == 1 and report.indexed == 12
    assert "files:broken.pdf" in state.load("files").skipped

    (handbook_copy / "broken.pdf").unlink()
    syncer.sync(FilesConnector(handbook_copy))
    assert state.load("files").skipped == {}


class CrashingConnector:
    """Yields some documents from a real folder, then fails as a network would mid-sync."""

    name = "files"
    listing_is_cheap = True

    def __init__(self, inner: FilesConnector, fail_after: int) -> None:
        self.inner = inner
        self.fail_after = fail_after

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        for n, item in enumerate(i for i in self.inner.poll(checkpoint) if isinstance(i, Document)):
            if n == self.fail_after:
                raise ConnectorError("connection reset")
            yield item

    def list_ids(self) -> Iterator[str]:
        return self.inner.list_ids()


def test_a_crash_mid_sync_resumes_without_losing_or_duplicating(
    handbook_copy: Path, index: EdgeIndex, tmp_path: Path
) -> None:
    state = FileStateStore(tmp_path / "state.json")
    syncer, embedder = make_syncer(index, state)
    with pytest.raises(SyncFailed):
        syncer.sync(CrashingConnector(FilesConnector(handbook_copy), fail_after=5))
    assert len(index.document_versions("files")) == 5
    assert state.load("files").checkpoint is None, "no checkpoint past unwritten documents"

    embedder.passages_embedded = 0
    report = syncer.sync(FilesConnector(handbook_copy))
    assert report.indexed == 7 and report.unchanged == 5
    versions = index.document_versions("files")
    assert len(versions) == 12 and all(len(v) == 1 for v in versions.values())


def test_documents_are_embedded_together_and_written_in_order(
    handbook_copy: Path, index: EdgeIndex, tmp_path: Path
) -> None:
    embedder = HashEmbedder()
    together = Syncer(
        index, embedder, CHUNKER, FileStateStore(tmp_path / "a.json"), batch_chunks=10_000
    )
    report = together.sync(FilesConnector(handbook_copy))
    assert report.indexed == 12 and embedder.batches == 1, "one batch for the whole folder"

    other = EdgeIndex(tmp_path / "other", HashEmbedder.dim)
    try:
        embedder = HashEmbedder()
        apart = Syncer(
            other, embedder, CHUNKER, FileStateStore(tmp_path / "b.json"), batch_chunks=1
        )
        assert apart.sync(FilesConnector(handbook_copy)).indexed == 12 and embedder.batches == 12
        assert other.document_versions("files") == index.document_versions("files")
        assert other.stats("files") == index.stats("files")
    finally:
        other.close()
