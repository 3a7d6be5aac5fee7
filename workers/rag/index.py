"""The vector index: one protocol, two Qdrant backends (embedded engine, server).

Each chunk is one point with a named dense vector, a named sparse vector and a payload that
carries the document's ACL and the places it lives in (a Confluence space, Drive folders, a
folder on disk) for channel scopes. Every search takes its audience (`workers/rag/audience.py`:
one reader, or everyone in a channel) as a required argument and filters on it inside Qdrant,
so no code path can search without an ACL.

A search returns candidates (point ids and scores) only; the passages that survive fusion are
read afterwards (`hits`), since reading a passage costs more than finding it.

Point ids derive from (document id, version, ordinal). Replacing a document writes the new
version's points first and only then deletes the old version's, so a crash in between leaves
the old answer findable, never a hole; the next sync sees two versions and finishes the job.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from connectors.base import Document
from workers.rag.audience import Audience
from workers.rag.chunking import Chunk
from workers.rag.curation import UNCURATED, Curation, place_names
from workers.rag.embed import Vectors
from workers.rag.sparse import SparseVector

DENSE = "dense"
SPARSE = "sparse"
_POINT_NAMESPACE = uuid.UUID("6f1c0d1e-6a43-4f57-9a3c-2f0b1d2e8a11")
KEYWORD_FIELDS = ("document_id", "source", "acl", "version", "places", "url")
MAX_FACET_VALUES = 100_000


class IndexUnavailable(Exception):
    """The index could not be read or written (server down, disk full, locked)."""


@dataclass(frozen=True)
class Candidate:
    """A passage a search found, before its payload is read: reading payloads is most of a
    search's cost, so only the passages that survive fusion are read (`Index.hits`)."""

    point_id: str
    score: float

    @property
    def key(self) -> str:
        """What fusion tells passages apart by."""
        return self.point_id

    def rescored(self, score: float) -> Candidate:
        return Candidate(self.point_id, score)  # `replace` costs half of a fusion


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk with what a citation needs."""

    chunk_id: str
    document_id: str
    source: str
    title: str
    url: str
    updated_at: datetime
    text: str
    breadcrumb: str
    score: float
    acl: frozenset[str] = frozenset()  # who may open it: whether a channel may see it
    version: str = ""  # the document's version: whether a cited passage may have changed
    point_id: str = ""  # the index's id for it (its `Candidate`'s)

    @property
    def key(self) -> str:
        return self.point_id or self.chunk_id

    def rescored(self, score: float) -> Hit:
        return replace(self, score=score)


@dataclass(frozen=True)
class SourceStats:
    documents: int
    chunks: int


class Index(Protocol):
    """What the pipeline needs from a vector index."""

    def replace_document(
        self,
        document: Document,
        chunks: Sequence[Chunk],
        dense: Vectors,
        sparse: Sequence[SparseVector],
    ) -> None: ...

    def delete_document(self, document_id: str) -> None: ...

    def set_acl(self, document_id: str, acl: frozenset[str]) -> None:
        """Change who may read a document's chunks without touching their vectors."""
        ...

    def document_acls(self, source: str) -> dict[str, frozenset[str]]:
        """Document id -> its readers, for every document of the source."""
        ...

    def delete_source(self, source: str) -> None: ...

    def document_versions(self, source: str) -> dict[str, set[str]]:
        """Every indexed document of `source` with the version(s) its chunks carry."""
        ...

    def search_dense(
        self, vector: Vectors, audience: Audience, limit: int, curation: Curation = UNCURATED
    ) -> list[Candidate]:
        """The nearest passages `audience` may read, within `curation`'s places and not
        hidden by it, best first."""
        ...

    def search_sparse(
        self, vector: SparseVector, audience: Audience, limit: int, curation: Curation = UNCURATED
    ) -> list[Candidate]: ...

    def hits(self, candidates: Sequence[Candidate]) -> list[Hit]:
        """The candidates' passages, in their order and with their scores (any deleted since
        the search are left out)."""
        ...

    def linked(self, candidates: Sequence[Candidate], urls: Collection[str]) -> dict[str, str]:
        """Point id -> link, for the candidates whose document has one of these links (found
        inside the index: only their links are read)."""
        ...

    def stats(self, source: str) -> SourceStats: ...

    def document_texts(self, document_id: str) -> list[str]:
        """The passages a document's indexed version holds (to tell if a cited one changed)."""
        ...

    def term_statistics(self) -> tuple[int, int]:
        """(passages, their total terms) over the whole index, for BM25's average length."""
        ...

    def principals(self, source: str) -> set[str]:
        """Every principal named in the ACLs of `source`'s documents."""
        ...

    def commit(self) -> None:
        """Called after a batch of writes (a sync): make them durable and quick to search."""
        ...

    def close(self) -> None: ...


def point_id(document_id: str, version: str, ordinal: int) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{document_id}\x1f{version}\x1f{ordinal}"))


def chunk_payload(document: Document, chunk: Chunk, terms: int) -> dict[str, Any]:
    return {
        "document_id": document.id,
        "chunk_id": chunk.id,
        "ordinal": chunk.ordinal,
        "source": document.source,
        "title": document.title,
        "url": document.url,
        "updated_at": document.updated_at.isoformat(),
        "version": document.version,
        "acl": sorted(document.acl),
        "breadcrumbs": list(document.breadcrumbs),
        "labels": list(document.labels),
        "places": place_names(document.source, document.places),
        "headings": list(chunk.headings),
        "breadcrumb": chunk.breadcrumb,
        "text": chunk.text,
        "terms": terms,  # the passage's length, for BM25's average (term_statistics)
    }


def sum_terms(rows: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Passages that record their length, and the lengths' total (older points do not)."""
    lengths = [int(row["terms"]) for row in rows if isinstance(row.get("terms"), int)]
    return len(lengths), sum(lengths)


def hits_in_order(
    candidates: Sequence[Candidate], payloads: dict[str, dict[str, Any]]
) -> list[Hit]:
    """Hits for the candidates whose payload was read (by point id), in the candidates' order."""
    return [
        hit_from_payload(payloads[c.point_id], c.score, c.point_id)
        for c in candidates
        if c.point_id in payloads
    ]


def hit_from_payload(payload: dict[str, Any], score: float, point: str = "") -> Hit:
    return Hit(
        chunk_id=payload["chunk_id"],
        document_id=payload["document_id"],
        source=payload["source"],
        title=payload["title"],
        url=payload["url"],
        updated_at=datetime.fromisoformat(payload["updated_at"]),
        text=payload["text"],
        breadcrumb=payload.get("breadcrumb", ""),
        score=float(score),
        acl=frozenset(payload.get("acl") or ()),
        version=str(payload.get("version") or ""),
        point_id=point,
    )


@dataclass(frozen=True)
class PreparedPoint:
    """One chunk as a backend writes it: id, both vectors and the payload."""

    id: str
    dense: list[float]
    sparse: SparseVector
    payload: dict[str, Any]


def prepare_points(
    document: Document, chunks: Sequence[Chunk], dense: Vectors, sparse: Sequence[SparseVector]
) -> list[PreparedPoint]:
    if not len(chunks) == len(dense) == len(sparse):
        raise ValueError(
            f"{len(chunks)} chunks but {len(dense)} dense and {len(sparse)} sparse vectors"
        )
    return [
        PreparedPoint(
            id=point_id(document.id, document.version, chunk.ordinal),
            dense=[float(x) for x in dense_row],
            sparse=sparse_row,
            payload=chunk_payload(document, chunk, sparse_row.length),
        )
        for chunk, dense_row, sparse_row in zip(chunks, dense, sparse, strict=True)
    ]


def collect_acls(rows: Iterable[dict[str, Any]]) -> dict[str, frozenset[str]]:
    return {row["document_id"]: frozenset(row.get("acl") or ()) for row in rows}


def collect_versions(rows: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for payload in rows:
        versions.setdefault(payload["document_id"], set()).add(payload["version"])
    return versions
