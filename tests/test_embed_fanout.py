"""First syncs fan out over embedding workers: order and checkpoints hold however many batches
are out, real `ragbot worker -Q embed` processes embed them, and a worker killed mid-batch
loses and duplicates nothing."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from connectors.base import Checkpoint, Deleted, Document, PollItem, Skipped
from connectors.files import FilesConnector
from tests.fakes.openai_api import FakeOpenAI
from tests.processes import Stack, free_port, wait_for
from tests.support import HashEmbedder
from workers.celery_app import make_celery
from workers.embed_fanout import QueuedEmbedding, embed_batch, read_batch
from workers.ingest.batches import EmbeddedBatch, PendingBatch
from workers.ingest.state import FileStateStore, SourceState
from workers.ingest.sync import Syncer, SyncFailed, SyncReport
from workers.rag.audience import Audience
from workers.rag.chunking import Chunker
from workers.rag.embed import EmbeddingError, OpenAIEmbedder
from workers.rag.index_edge import EdgeIndex
from workers.rag.llm import make_client
from workers.rag.tokens import counter_for_model
from workers.runtime import Runtime
from workers.settings import Settings

EVERYONE = Audience.of({"public"})
CHUNKER = Chunker(counter_for_model("gpt-4o-mini"))
MODEL = "text-embedding-3-small"


def document(n: int, version: str = "v1") -> Document:
    return Document(
        id=f"files:{n}.md",
        source="files",
        title=f"Page {n}",
        text=f"# Page {n}\n\nPage {n} says the office opens at {n} o'clock.",
        url=f"file:///docs/{n}.md",
        version=version,
        updated_at=datetime(2026, 11, 1, tzinfo=UTC),
        acl=frozenset({"public"}),
    )


class Script:
    """A source that yields exactly what a test lists."""

    name = "files"
    listing_is_cheap = False

    def __init__(self, items: list[PollItem]) -> None:
        self.items = items

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        yield from self.items

    def list_ids(self) -> Iterator[str]:
        return iter(i.id for i in self.items if isinstance(i, Document))


class HeldEmbedding:
    """Embedding workers that finish nothing until the sync asks, and fail on one passage."""

    def __init__(self, in_flight: int, failing: str | None = None) -> None:
        self.in_flight, self.failing = in_flight, failing
        self.out = 0
        self.most_out = 0
        self.submitted = 0

    def submit(self, texts: list[str]) -> PendingBatch:
        self.submitted += 1
        self.out += 1
        self.most_out = max(self.most_out, self.out)
        return _Held(self, texts)

    def close(self) -> None:
        pass


class _Held:
    def __init__(self, owner: HeldEmbedding, texts: list[str]) -> None:
        self.owner, self.texts = owner, texts

    def wait(self, seconds: float) -> bool:
        return seconds > 0  # done only once the sync really waits for it

    def result(self) -> EmbeddedBatch:
        self.owner.out -= 1
        if self.owner.failing and any(self.owner.failing in t for t in self.texts):
            raise EmbeddingError("the embedding server went away")
        return EmbeddedBatch(HashEmbedder().embed_passages(self.texts), 0.0)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[EdgeIndex]:
    idx = EdgeIndex(tmp_path / "index", HashEmbedder.dim)
    yield idx
    idx.close()


def test_a_checkpoint_waits_for_every_batch_before_it(index: EdgeIndex, tmp_path: Path) -> None:
    script: list[PollItem] = []
    for n in range(6):
        script += [document(n), Checkpoint("files", str(n))]
    state = FileStateStore(tmp_path / "state.json")
    held = HeldEmbedding(in_flight=4, failing="Page 3 says")
    syncer = Syncer(index, HashEmbedder(), CHUNKER, state, batch_chunks=1, embedding=lambda: held)

    with pytest.raises(SyncFailed, match="embedding server went away"):
        syncer.sync(Script(script), prune=False)
    assert held.most_out == 4, "batches were out at once, never more than allowed"
    assert sorted(index.document_versions("files")) == [f"files:{n}.md" for n in range(3)]
    assert state.load("files").checkpoint == "2", "no checkpoint past an unwritten batch"


def test_what_follows_a_batch_is_done_after_it_is_written(index: EdgeIndex, tmp_path: Path) -> None:
    empty = replace(document(3), text="")  # no passage: written without embedding
    script: list[PollItem] = [document(0), document(1), Deleted("files:0.md"), empty, document(2)]
    held = HeldEmbedding(in_flight=8)
    syncer = Syncer(
        index,
        HashEmbedder(),
        CHUNKER,
        FileStateStore(tmp_path / "state.json"),
        batch_chunks=1,
        embedding=lambda: held,
    )
    report = syncer.sync(Script(script), prune=False)
    assert report.indexed == 4 and report.deleted == 1
    assert sorted(index.document_versions("files")) == ["files:1.md", "files:2.md"]
    assert held.submitted == 3, "a document without passages is not sent to be embedded"


def test_a_skip_report_after_a_removal_is_kept_while_a_batch_is_out(
    index: EdgeIndex, tmp_path: Path
) -> None:
    # The files connector refuses a file that became a symlink out of the folder this way:
    # out of the index first, then reported. Order holds though a batch is still embedding.
    script: list[PollItem] = [document(0), Deleted("files:9.md"), Skipped("files:9.md", "link")]
    state = FileStateStore(tmp_path / "state.json")
    held = HeldEmbedding(in_flight=8)
    syncer = Syncer(index, HashEmbedder(), CHUNKER, state, embedding=lambda: held)
    syncer.sync(Script(script), prune=False)
    assert state.load("files").skipped == {"files:9.md": "link"}


def test_a_document_read_after_its_skip_report_clears_it_while_a_batch_is_out(
    index: EdgeIndex, tmp_path: Path
) -> None:
    # Drive: one user's corpus cannot read a file that another's then reads.
    script: list[PollItem] = [document(0), Skipped("files:1.md", "no access"), document(1)]
    state = FileStateStore(tmp_path / "state.json")
    held = HeldEmbedding(in_flight=8)
    syncer = Syncer(index, HashEmbedder(), CHUNKER, state, batch_chunks=1, embedding=lambda: held)
    syncer.sync(Script(script), prune=False)
    assert state.load("files").skipped == {}
    assert "files:1.md" in index.document_versions("files")


class SlowEmbedding:
    """Embedding workers that take `seconds` for every batch (pods still starting)."""

    in_flight = 1

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def submit(self, texts: list[str]) -> PendingBatch:
        return _Slow(texts, time.monotonic() + self.seconds)

    def close(self) -> None:
        pass


class _Slow:
    def __init__(self, texts: list[str], ready_at: float) -> None:
        self.texts, self.ready_at = texts, ready_at

    def wait(self, seconds: float) -> bool:
        time.sleep(max(min(seconds, self.ready_at - time.monotonic()), 0))
        return time.monotonic() >= self.ready_at

    def result(self) -> EmbeddedBatch:
        return EmbeddedBatch(HashEmbedder().embed_passages(self.texts), 0.0)


class RecordingState(FileStateStore):
    """Remembers when each save carried a running sync's progress."""

    progress_saved: list[float]

    def save(self, source: str, state: SourceState) -> None:
        if state.progress is not None:
            self.progress_saved.append(time.monotonic())
        super().save(source, state)


def test_a_sync_waiting_on_its_embedding_workers_keeps_its_progress_current(
    index: EdgeIndex, tmp_path: Path
) -> None:
    state = RecordingState(tmp_path / "state.json")
    state.progress_saved = []
    slow = SlowEmbedding(seconds=4.5)
    syncer = Syncer(index, HashEmbedder(), CHUNKER, state, embedding=lambda: slow)
    started = time.monotonic()
    syncer.sync(Script([document(0)]), prune=False)
    waiting = [t - started for t in state.progress_saved if t - started > 1.5]
    assert waiting, "progress saved while the batch was out, not only when items arrived"


def test_vectors_from_another_model_are_refused() -> None:
    payload = embed_batch(HashEmbedder(), ["a passage", "another"])
    batch = read_batch(payload, HashEmbedder.name, HashEmbedder.dim, 2)
    assert np.allclose(batch.vectors, HashEmbedder().embed_passages(["a passage", "another"]))
    with pytest.raises(EmbeddingError, match="same RAGBOT_EMBED_MODEL"):
        read_batch(payload, "local-e5-small-q4", 384, 2)
    with pytest.raises(EmbeddingError, match="1 vectors for 2"):
        read_batch(embed_batch(HashEmbedder(), ["one"]), HashEmbedder.name, HashEmbedder.dim, 2)


def fanout_settings(redis_db: str, fake: FakeOpenAI, data_dir: Path, folder: Path) -> Settings:
    return Settings(
        redis_url=redis_db,
        ragbot_data_dir=data_dir,
        files_path=folder,
        ragbot_embed_url=fake.base_url,
        ragbot_embed_api_key=SecretStr(fake.api_key),
        ragbot_embed_model=MODEL,
        ragbot_embed_fanout=True,
        ragbot_task_visibility_seconds=5,
    )


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "REDIS_URL": str(settings.redis_url),
        "RAGBOT_DATA_DIR": str(settings.ragbot_data_dir),
        "RAGBOT_EMBED_URL": str(settings.ragbot_embed_url),
        "RAGBOT_EMBED_API_KEY": "test",
        "RAGBOT_EMBED_MODEL": MODEL,
        "RAGBOT_EMBED_FANOUT": "true",
        "RAGBOT_TASK_VISIBILITY_SECONDS": "5",
    }


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(api_key="test").start()
    yield server
    server.stop()


def test_a_fanned_out_sync_matches_one_embedded_in_process(
    handbook_copy: Path, redis_db: str, fake: FakeOpenAI, tmp_path: Path
) -> None:
    settings = fanout_settings(redis_db, fake, tmp_path / "fanned", handbook_copy)
    stack = Stack(worker_env(settings), free_port(), tmp_path)
    try:
        stack.start_worker()  # no -Q: with RAGBOT_EMBED_FANOUT a worker embeds too
        with Runtime(settings) as runtime:
            fanned = runtime.syncer().sync(runtime.connector("files"))
            fanned_index = runtime.index
            versions = fanned_index.document_versions("files")
            texts = {d: fanned_index.document_texts(d) for d in versions}
            stats = fanned_index.stats("files")
    finally:
        stack.stop()
    local = settings.model_copy(
        update={"ragbot_embed_fanout": False, "ragbot_data_dir": tmp_path / "local"}
    )
    with Runtime(local) as runtime:
        alone = runtime.syncer().sync(runtime.connector("files"))
        index = runtime.index
        assert index.document_versions("files") == versions
        assert {d: index.document_texts(d) for d in versions} == texts
        assert index.stats("files") == stats
        question = runtime.embedder.embed_query("how many days of annual leave?")
        top = index.search_dense(question, EVERYONE, 3)
        with Runtime(settings) as fanned_runtime:
            assert fanned_runtime.index.search_dense(question, EVERYONE, 3) == top
    assert fanned.indexed == alone.indexed == 12
    assert fanned.chunks_embedded == alone.chunks_embedded


def test_without_embedding_workers_a_sync_fails_clearly(
    handbook_copy: Path, redis_db: str, fake: FakeOpenAI, index: EdgeIndex, tmp_path: Path
) -> None:
    settings = fanout_settings(redis_db, fake, tmp_path, handbook_copy)
    state = FileStateStore(tmp_path / "state.json")
    embedder = HashEmbedder()
    syncer = Syncer(
        index,
        embedder,
        CHUNKER,
        state,
        embedding=lambda: QueuedEmbedding(make_celery(settings), embedder, 4, wait_seconds=1),
    )
    with pytest.raises(SyncFailed, match=r"no embedding worker returned a batch within 1 s"):
        syncer.sync(FilesConnector(handbook_copy))
    assert index.document_versions("files") == {}
    assert "ragbot worker -Q embed" in (state.load("files").last_error or "")


def test_a_killed_embedding_worker_loses_and_duplicates_nothing(
    tmp_path: Path, redis_db: str, fake: FakeOpenAI
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(24):
        (folder / f"{n:02d}.md").write_text(
            f"# Page {n}\n\nPage {n} says the office opens at {n} o'clock.\n", encoding="utf-8"
        )
    fake.embed_seconds = 1.0  # long enough to be killed mid-batch
    settings = fanout_settings(redis_db, fake, tmp_path / "data", folder)
    embedder = OpenAIEmbedder(make_client("test", fake.base_url, timeout=20), MODEL, 128, 1)
    index = EdgeIndex(tmp_path / "index", embedder.dim)
    stack = Stack(worker_env(settings), free_port(), tmp_path)
    outcome: list[object] = []
    try:
        doomed = stack.start_worker("-Q", "embed")
        syncer = Syncer(
            index,
            embedder,
            CHUNKER,
            FileStateStore(tmp_path / "state.json"),
            batch_chunks=4,
            embedding=lambda: QueuedEmbedding(make_celery(settings), embedder, 8, 180),
        )

        def sync() -> None:
            try:
                outcome.append(syncer.sync(FilesConnector(folder)))
            except Exception as exc:  # reported below, with the reason
                outcome.append(exc)

        running = threading.Thread(target=sync)
        running.start()
        wait_for(lambda: fake.count("/v1/embeddings") >= 2, 60, "the worker's first batch")
        stack.kill_worker(doomed)  # mid-batch: its batch is unacknowledged
        requests_when_killed = fake.count("/v1/embeddings")
        stack.start_worker("-Q", "embed")
        running.join(240)
        assert not running.is_alive()
    finally:
        stack.stop()
    try:
        (report,) = outcome
        assert isinstance(report, SyncReport), report
        assert report.indexed == 24
        versions = index.document_versions("files")
        assert len(versions) == 24, "nothing lost"
        for document_id in versions:
            texts = index.document_texts(document_id)
            assert len(texts) == len(set(texts)) == 1, f"{document_id} written once"
        assert index.stats("files").chunks == 24, "nothing duplicated"
        assert fake.count("/v1/embeddings") > requests_when_killed
    finally:
        index.close()
