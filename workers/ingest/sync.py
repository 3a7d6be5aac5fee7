"""Sync one source into the index: changes since the checkpoint, then the deletion check.

Incremental by default: a document whose version the index already holds is neither
re-embedded nor rewritten. A checkpoint is saved only after everything before it was written,
so a crash or an outage resumes where it stopped and the index is never left half-updated.

Documents are embedded together, in batches of about `batch_chunks` passages across documents
(a wiki's pages are a few passages each; an embedding server, or several at once, is only busy
with many). Batches are handed over (workers/ingest/batches.py: a thread beside the sync, or
embedding workers) while listing and splitting go on, and written back in the order they were
sent; anything else the connector yields (a checkpoint, a deletion) waits in line behind the
batches before it."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from connectors.base import (
    Checkpoint,
    Connector,
    ConnectorError,
    Deleted,
    Document,
    GroupDirectory,
    PermissionsChanged,
    Skipped,
    VersionAware,
)
from workers.ingest.batches import BatchEmbedding, EmbeddedBatch, EmbeddingThread, PendingBatch
from workers.ingest.progress import SyncProgress
from workers.ingest.state import SourceState, StateStore, StateUnavailable, checkpoint_of
from workers.rag.chunking import Chunk, Chunker
from workers.rag.embed import Embedder, EmbeddingError
from workers.rag.index import Index, IndexUnavailable
from workers.rag.sparse import TermLengths, document_vector

log = logging.getLogger(__name__)

# A 50 MB log would otherwise hold the index worker for hours: past this many chunks the rest
# of a document is left out, and `ragbot status` says so.
DEFAULT_MAX_CHUNKS = 500
# Text kept for chunking when a document is cut: generous for the largest chunk (about 500
# tokens, 4 to 6 characters each in English, fewer in Korean).
CHARACTERS_PER_CHUNK = 4000
DEFAULT_BATCH_CHUNKS = 256


@dataclass
class _Prepared:
    """A document split into passages, waiting for its batch to be embedded."""

    document: Document
    chunks: list[Chunk]
    problem: str | None  # what `ragbot status` should say once it is written


@dataclass
class _Batch:
    """Passages handed over for embedding, with the documents they belong to."""

    documents: list[_Prepared]
    texts: list[str]
    vectors: PendingBatch


class _NothingToEmbed:
    """Documents without a passage (empty pages) are written without a trip to a worker."""

    def wait(self, seconds: float) -> bool:
        return True

    def result(self) -> EmbeddedBatch:
        return EmbeddedBatch(np.zeros((0, 0), dtype=np.float32), 0.0)


_NOTHING_TO_EMBED = _NothingToEmbed()


@dataclass(frozen=True)
class _ReadAgain:
    """A document was read again: what `ragbot status` last said about it no longer holds."""

    id: str


# What waits behind a batch: anything a connector yields but a document, in its order.
_Action = Deleted | PermissionsChanged | Skipped | Checkpoint | _ReadAgain


@dataclass
class _Run:
    """One sync's working state, in the order the source gave it."""

    source: str
    state: SourceState
    known: dict[str, set[str]]
    full: bool
    report: SyncReport
    tracker: _ProgressTracker
    embedding: BatchEmbedding
    acls: dict[str, frozenset[str]] | None = None
    gathering: list[_Prepared] = field(default_factory=list)  # the next batch's documents
    gathered_chunks: int = 0
    pending: deque[_Batch | _Action] = field(default_factory=deque)
    batches_out: int = 0

    def gather(self, prepared: _Prepared) -> int:
        """Add a document to the next batch; returns the passages gathered so far."""
        self.gathering.append(prepared)
        self.gathered_chunks += len(prepared.chunks)
        return self.gathered_chunks

    def gathers(self, document_id: str) -> bool:
        return any(p.document.id == document_id for p in self.gathering)

    def send(self) -> None:
        """Hand the gathered documents' passages over for embedding; they wait in line."""
        if not self.gathering:
            return
        texts = [chunk.embed_text for prepared in self.gathering for chunk in prepared.chunks]
        vectors = self.embedding.submit(texts) if texts else _NOTHING_TO_EMBED
        self.pending.append(_Batch(self.gathering, texts, vectors))
        self.batches_out += 1
        self.gathering, self.gathered_chunks = [], 0


class SyncFailed(Exception):
    """A sync stopped early; the message says why in one line. Progress so far is kept."""


@dataclass
class SyncReport:
    source: str
    indexed: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    permissions_updated: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    def summary(self) -> str:
        permissions = (
            f", {self.permissions_updated} permissions updated" if self.permissions_updated else ""
        )
        return (
            f"{self.source}: {self.indexed} indexed, {self.unchanged} unchanged, "
            f"{self.deleted} deleted, {self.skipped} skipped{permissions} "
            f"({self.chunks_embedded} chunks embedded, {self.seconds:.1f}s)"
        )


class Syncer:
    """Moves documents from connectors into the index."""

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        chunker: Chunker,
        state: StateStore,
        max_chunks_per_document: int = DEFAULT_MAX_CHUNKS,
        batch_chunks: int = DEFAULT_BATCH_CHUNKS,
        embedding: Callable[[], BatchEmbedding] | None = None,
    ) -> None:
        """`embedding` gives each sync the place its batches are embedded (default: this
        embedder on a thread beside the sync)."""
        self.index = index
        self.embedder = embedder
        self.chunker = chunker
        self.state = state
        self.max_chunks = max_chunks_per_document
        self.batch_chunks = batch_chunks
        self.embedding = embedding or (lambda: EmbeddingThread(embedder))
        self._lengths = TermLengths()

    def sync(
        self,
        connector: Connector,
        full: bool = False,
        prune: bool = True,
        progress: Callable[[SyncProgress], None] | None = None,
    ) -> SyncReport:
        """Index the changes; with `prune`, also remove what the source no longer lists.

        Progress is saved with the source's state every few seconds (and passed to `progress`)."""
        source = connector.name
        report = SyncReport(source)
        started = time.perf_counter()
        state = self.state.load(source)
        state.last_attempt_at = _now()
        embedding = self.embedding()
        try:
            known = self.index.document_versions(source)
            tracker = _ProgressTracker(
                self.state,
                source,
                state,
                report,
                self._expected(connector, known, full, state),
                progress,
            )
            self._lengths = TermLengths(*self.index.term_statistics())
            checkpoint = None if full else checkpoint_of(source, state)
            if full:
                state.skipped = {}
            if isinstance(connector, VersionAware):
                connector.use_known_versions({} if full else known)
            run = _Run(source, state, known, full, report, tracker, embedding)
            self._apply(connector, checkpoint, run)
            if prune or full:
                report.deleted += self._prune(connector, state)
                if isinstance(connector, GroupDirectory):
                    self._refresh_memberships(connector, source, state)
            self.index.commit()
        except (ConnectorError, IndexUnavailable, EmbeddingError, StateUnavailable) as exc:
            state.last_error = f"{_now()}: {exc}"
            state.progress = None
            self._save_quietly(source, state)
            raise SyncFailed(f"{source}: {exc}") from exc
        finally:
            embedding.close()
        tracker.tick(final=True)
        state.last_success_at = _now()
        state.last_error = None
        state.progress = None
        self.state.save(source, state)
        report.seconds = time.perf_counter() - started
        log.info(
            "synced %s: %d indexed, %d unchanged, %d deleted, %d skipped, %d chunks embedded",
            source,
            report.indexed,
            report.unchanged,
            report.deleted,
            report.skipped,
            report.chunks_embedded,
        )
        return report

    def _apply(self, connector: Connector, checkpoint: Checkpoint | None, run: _Run) -> None:
        """Act on what the connector yields, in order. Batches are embedded while listing goes
        on; anything else (a checkpoint, a deletion) waits for the batches before it to be
        written. When the source fails part-way, the documents already read are still written
        (the checkpoint before them stays put)."""
        try:
            for item in connector.poll(checkpoint):
                run.tracker.tick()
                if isinstance(item, Document):
                    run.pending.append(_ReadAgain(item.id))
                    prepared = self._prepare(item, run.known, run.full, run.report)
                    if isinstance(prepared, str):
                        run.pending.append(Skipped(item.id, prepared))
                    elif prepared is not None and run.gather(prepared) >= self.batch_chunks:
                        run.send()
                    self._settle(run)
                    continue
                # Everything waits in line behind what came before it. A skip report for a
                # document not being gathered does not send the gathered ones off early
                # (sources send many while listing, and batches would stay small).
                if not isinstance(item, Skipped) or run.gathers(item.id):
                    run.send()
                run.pending.append(item)
                self._settle(run)
        except ConnectorError:
            run.send()
            self._settle(run, drain=True)
            raise
        run.send()
        self._settle(run, drain=True)

    def _settle(self, run: _Run, drain: bool = False) -> None:
        """Write the batches whose vectors are back and act on the items behind them, in order;
        wait for the oldest batch while too many are out (or everything, with `drain`)."""
        while run.pending:
            head = run.pending[0]
            if isinstance(head, _Batch):
                if not head.vectors.wait(0):
                    if not (drain or run.batches_out >= run.embedding.in_flight):
                        return
                    # Waiting can take minutes (embedding pods starting): keep the progress
                    # `ragbot status` shows current meanwhile.
                    while not head.vectors.wait(PROGRESS_SECONDS):
                        run.tracker.tick()
                self._write(head, run)
                run.batches_out -= 1
            else:
                self._act(head, run)
            run.pending.popleft()

    def _act(self, item: _Action, run: _Run) -> None:
        """A deletion, a sharing change, a skip report, a document read again or a checkpoint,
        once all before it is written."""
        state, report, known = run.state, run.report, run.known
        if isinstance(item, Deleted):
            if known.pop(item.id, None) is not None:
                self.index.delete_document(item.id)
                report.deleted += 1
            state.skipped.pop(item.id, None)
        elif isinstance(item, PermissionsChanged):
            if run.acls is None:  # read once, and only by sources that send these
                run.acls = self.index.document_acls(run.source)
            if item.id in known and run.acls.get(item.id) != item.acl:
                self.index.set_acl(item.id, item.acl)
                run.acls[item.id] = item.acl
                report.permissions_updated += 1
            else:
                report.unchanged += 1
            state.skipped.pop(item.id, None)
        elif isinstance(item, Skipped):
            state.skipped[item.id] = item.reason
            report.skipped += 1
        elif isinstance(item, _ReadAgain):
            state.skipped.pop(item.id, None)
        elif isinstance(item, Checkpoint):
            state.checkpoint = item.value
            self.state.save(run.source, state)

    def _expected(
        self, connector: Connector, known: dict[str, set[str]], full: bool, state: SourceState
    ) -> int | None:
        """How many documents this sync will list: all of them on a first or full sync (what
        the index holds, or a count where listing is cheap); unknown for incremental ones."""
        if not full and state.checkpoint is not None:
            return None
        if known:
            return len(known)
        if connector.listing_is_cheap:
            return sum(1 for _ in connector.list_ids())
        return None

    def _prepare(
        self, document: Document, known: dict[str, set[str]], full: bool, report: SyncReport
    ) -> _Prepared | str | None:
        """The document's passages; None when the index already holds this version; a string
        (what `ragbot status` should say) when it cannot be split."""
        if not full and known.get(document.id) == {document.version}:
            report.unchanged += 1
            return None
        limit = self.max_chunks * CHARACTERS_PER_CHUNK
        cut = len(document.text) > limit
        if cut:
            document = replace(document, text=document.text[:limit])
        try:
            chunks = self.chunker.chunk(document)
        except Exception as exc:  # one document's text must never stop the sync
            log.warning("could not chunk %s: %s", document.id, exc.__class__.__name__)
            return f"could not be split into passages ({exc.__class__.__name__})"
        problem = None
        if cut or len(chunks) > self.max_chunks:
            problem = (
                f"partly indexed: only its first {self.max_chunks} passages "
                "(RAGBOT_MAX_CHUNKS_PER_DOCUMENT)"
            )
            chunks = chunks[: self.max_chunks]
        return _Prepared(document, chunks, problem)

    def _write(self, batch: _Batch, run: _Run) -> None:
        """Write the batch's documents in order, once its vectors are back."""
        embedded = batch.vectors.result()
        run.report.embed_seconds += embedded.seconds
        if len(embedded.vectors) != len(batch.texts):
            raise EmbeddingError(
                f"{len(embedded.vectors)} vectors came back for {len(batch.texts)} passages"
            )
        offset = 0
        for prepared in batch.documents:
            document, chunks = prepared.document, prepared.chunks
            own = batch.texts[offset : offset + len(chunks)]
            vectors = embedded.vectors[offset : offset + len(chunks)]
            offset += len(chunks)
            average = self._lengths.average
            sparse = [document_vector(text, average) for text in own]
            self._lengths.add(sparse)
            self.index.replace_document(document, chunks, vectors, sparse)
            run.known[document.id] = {document.version}
            run.report.indexed += 1
            run.report.chunks_embedded += len(chunks)
            if prepared.problem:
                run.state.skipped[document.id] = prepared.problem

    def _prune(self, connector: Connector, state: SourceState) -> int:
        """Remove what the source no longer has; forget skip reports for vanished items."""
        current = set(connector.list_ids())
        gone = set(self.index.document_versions(connector.name)) - current
        for document_id in sorted(gone):
            self.index.delete_document(document_id)
        state.skipped = {k: v for k, v in state.skipped.items() if k in current}
        return len(gone)

    def _refresh_memberships(
        self, directory: GroupDirectory, source: str, state: SourceState
    ) -> None:
        """Who is in the groups the source's documents name (so `--as` and DMs get them)."""
        # Each directory picks its own kind (`group:confluence:…`, `group:google:…`).
        groups = {p for p in self.index.principals(source) if p.startswith("group:")}
        try:
            members = directory.members(groups)
        except ConnectorError as exc:  # keep the last known memberships; readers fail closed
            log.warning("group memberships of %s not refreshed: %s", source, exc)
            return
        state.memberships = {email: sorted(found) for email, found in sorted(members.items())}

    def _save_quietly(self, source: str, state: SourceState) -> None:
        try:
            self.state.save(source, state)
        except StateUnavailable:
            log.warning("could not record the sync error for %s", source)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


PROGRESS_SECONDS = 2.0


class _ProgressTracker:
    """Saves the sync's progress with its state every PROGRESS_SECONDS, and reports it."""

    def __init__(
        self,
        store: StateStore,
        source: str,
        state: SourceState,
        report: SyncReport,
        expected: int | None,
        callback: Callable[[SyncProgress], None] | None,
    ) -> None:
        self.store, self.source, self.state, self.report = store, source, state, report
        self.progress = SyncProgress(started=time.time(), expected=expected)
        self.callback = callback
        self._last = 0.0

    def tick(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < PROGRESS_SECONDS:
            return
        self._last = now
        report, progress = self.report, self.progress
        progress.listed = report.indexed + report.unchanged + report.skipped + report.deleted
        progress.indexed, progress.skipped = report.indexed, report.skipped
        progress.chunks, progress.updated = report.chunks_embedded, time.time()
        if not final:  # the sync's end saves the state itself, without progress
            self.state.progress = progress.to_json()
            try:
                self.store.save(self.source, self.state)
            except StateUnavailable as exc:  # progress is a courtesy: the sync goes on
                log.warning("progress of %s not saved: %s", self.source, exc)
        if self.callback is not None:
            self.callback(progress)
