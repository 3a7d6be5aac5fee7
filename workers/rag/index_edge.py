"""The embedded backend: Qdrant's engine in-process (`qdrant-edge-py`), on disk.

One process at a time may open a shard (its write-ahead log is locked); with `REDIS_URL` set
the worker owns it. Segments are optimised after writes so search stays in milliseconds.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from connectors.base import Document
from workers.rag.audience import Audience
from workers.rag.chunking import Chunk
from workers.rag.curation import UNCURATED, Curation
from workers.rag.embed import Vectors
from workers.rag.index import (
    DENSE,
    KEYWORD_FIELDS,
    MAX_FACET_VALUES,
    SPARSE,
    Candidate,
    Hit,
    IndexUnavailable,
    SourceStats,
    collect_acls,
    collect_versions,
    hits_in_order,
    prepare_points,
    sum_terms,
)
from workers.rag.sparse import SparseVector

log = logging.getLogger(__name__)

SCROLL_PAGE = 1000


class EdgeIndex:
    """An index in a folder, opened by this process alone."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        try:
            if (path / "edge_config.json").exists() or any(path.glob("segments*")):
                self._shard = qe.EdgeShard.load(str(path), config)
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(path), config)
            # An index made by an older version gains the fields added since.
            indexed = set(self._shard.info().payload_schema)
            for field in (f for f in KEYWORD_FIELDS if f not in indexed):
                self._shard.update(
                    qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword)
                )
        except Exception as exc:  # the engine raises plain exceptions with a message
            raise IndexUnavailable(f"the index at {path} could not be opened: {exc}") from exc
        self._dirty = False
        # Searches and writes run on many threads at once (the engine is thread-safe); only
        # the merge of fresh segments is done by one thread at a time.
        self._merging = threading.Lock()

    def replace_document(
        self,
        document: Document,
        chunks: Sequence[Chunk],
        dense: Vectors,
        sparse: Sequence[SparseVector],
    ) -> None:
        points = [
            qe.Point(
                id=p.id,
                vector={DENSE: p.dense, SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values)},
                payload=p.payload,
            )
            for p in prepare_points(document, chunks, dense, sparse)
        ]
        if points:
            self._update(qe.UpdateOperation.upsert_points(points))
        stale = qe.Filter(
            must=[_match("document_id", document.id)],
            must_not=[_match("version", document.version)],
        )
        self._update(qe.UpdateOperation.delete_points_by_filter(stale))
        if not points:
            self.delete_document(document.id)

    def delete_document(self, document_id: str) -> None:
        self._update(
            qe.UpdateOperation.delete_points_by_filter(
                qe.Filter(must=[_match("document_id", document_id)])
            )
        )

    def set_acl(self, document_id: str, acl: frozenset[str]) -> None:
        selector = qe.Filter(must=[_match("document_id", document_id)])
        self._update(qe.UpdateOperation.set_payload_by_filter(selector, {"acl": sorted(acl)}))

    def document_acls(self, source: str) -> dict[str, frozenset[str]]:
        return collect_acls(
            self._scroll(qe.Filter(must=[_match("source", source)]), ["document_id", "acl"])
        )

    def delete_source(self, source: str) -> None:
        self._update(
            qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[_match("source", source)]))
        )

    def document_versions(self, source: str) -> dict[str, set[str]]:
        return collect_versions(
            self._scroll(qe.Filter(must=[_match("source", source)]), ["document_id", "version"])
        )

    def search_dense(
        self, vector: Vectors, audience: Audience, limit: int, curation: Curation = UNCURATED
    ) -> list[Candidate]:
        query = qe.Query.Nearest([float(x) for x in vector], using=DENSE)
        return self._search(query, audience, limit, curation)

    def search_sparse(
        self, vector: SparseVector, audience: Audience, limit: int, curation: Curation = UNCURATED
    ) -> list[Candidate]:
        if not vector.indices:
            return []
        query = qe.Query.Nearest(qe.SparseVector(vector.indices, vector.values), using=SPARSE)
        return self._search(query, audience, limit, curation)

    def document_texts(self, document_id: str) -> list[str]:
        rows = self._scroll(qe.Filter(must=[_match("document_id", document_id)]), ["text"])
        return [str(row.get("text") or "") for row in rows]

    def term_statistics(self) -> tuple[int, int]:
        return sum_terms(self._scroll(None, ["terms"]))

    def stats(self, source: str) -> SourceStats:
        rows = self._scroll(qe.Filter(must=[_match("source", source)]), ["document_id"])
        documents = {row["document_id"] for row in rows}
        return SourceStats(documents=len(documents), chunks=len(rows))

    def principals(self, source: str) -> set[str]:
        self._optimize_if_dirty()
        request = qe.FacetRequest(
            key="acl",
            limit=MAX_FACET_VALUES,
            exact=True,
            filter=qe.Filter(must=[_match("source", source)]),
        )
        try:
            return {str(hit.value) for hit in self._shard.facet(request).hits}
        except Exception as exc:
            raise IndexUnavailable(f"the embedded index failed a facet count: {exc}") from exc

    def close(self) -> None:
        self._shard.close()

    def hits(self, candidates: Sequence[Candidate]) -> list[Hit]:
        if not candidates:
            return []
        ids: list[int | uuid.UUID | str] = [c.point_id for c in candidates]
        try:
            records = self._shard.retrieve(ids, True, False)
        except Exception as exc:
            raise IndexUnavailable(f"the embedded index failed a read: {exc}") from exc
        return hits_in_order(candidates, {str(r.id): r.payload or {} for r in records})

    def linked(self, candidates: Sequence[Candidate], urls: Collection[str]) -> dict[str, str]:
        if not candidates or not urls:
            return {}
        selector = qe.Filter(
            must=[
                qe.HasIdCondition({c.point_id for c in candidates}),
                qe.FieldCondition("url", match=qe.MatchAny(sorted(urls))),
            ]
        )
        request = qe.ScrollRequest(limit=len(candidates), filter=selector, with_payload=["url"])
        try:
            records, _ = self._shard.scroll(request)
        except Exception as exc:
            raise IndexUnavailable(f"the embedded index failed a read: {exc}") from exc
        return {str(record.id): str((record.payload or {}).get("url")) for record in records}

    def _search(
        self, query: Any, audience: Audience, limit: int, curation: Curation
    ) -> list[Candidate]:
        if audience.reads_nothing:
            return []
        self._optimize_if_dirty()
        request = qe.QueryRequest(
            limit=limit, query=query, filter=_filter(audience, curation), with_payload=False
        )
        try:
            points = self._shard.query(request)
        except Exception as exc:
            raise IndexUnavailable(f"the embedded index failed a search: {exc}") from exc
        return [Candidate(str(p.id), float(p.score)) for p in points]

    def _scroll(self, filter_: qe.Filter | None, fields: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        offset = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset, limit=SCROLL_PAGE, filter=filter_, with_payload=fields
                )
            )
            rows.extend(r.payload or {} for r in records)
            if offset is None:
                return rows

    def _update(self, operation: Any) -> None:
        try:
            self._shard.update(operation)
        except Exception as exc:
            raise IndexUnavailable(f"the embedded index rejected a write: {exc}") from exc
        self._dirty = True

    def _optimize_if_dirty(self) -> None:
        """Merge freshly written segments once before reading, not after every write; a
        reader that finds another thread merging searches at once instead of waiting."""
        if self._dirty and self._merging.acquire(blocking=False):
            try:
                self._dirty = False  # writes made while merging mark it dirty again
                self._shard.optimize()
            finally:
                self._merging.release()

    def commit(self) -> None:
        """After a batch of writes: persist segments and merge them so searches stay fast."""
        try:
            self._shard.flush()
            self._optimize_if_dirty()
        except Exception as exc:
            raise IndexUnavailable(f"the embedded index could not be flushed: {exc}") from exc


def _filter(audience: Audience, curation: Curation) -> qe.Filter:
    """Who may read it, and (when chosen) where it must live and what must not show."""
    readable = _audience_filter(audience)
    if not curation.narrows:
        return readable
    must: list[qe.ConditionType] = [readable]
    if curation.places:
        must.append(qe.FieldCondition("places", match=qe.MatchAny(sorted(curation.places))))
    must_not: list[qe.ConditionType] = []
    if curation.hidden:
        must_not.append(qe.FieldCondition("url", match=qe.MatchAny(sorted(curation.hidden))))
    return qe.Filter(must=must, must_not=must_not or None)


def _audience_filter(audience: Audience) -> qe.Filter:
    """`Audience.split` as a filter: a shared principal, or one of every reader's others."""
    shared, others = audience.split()
    any_shared = qe.FieldCondition("acl", match=qe.MatchAny(sorted(shared)))
    if not others:
        return qe.Filter(must=[any_shared])
    each_reader: list[qe.ConditionType] = [
        qe.FieldCondition("acl", match=qe.MatchAny(sorted(rest))) for rest in others
    ]
    if not shared:
        return qe.Filter(must=each_reader)
    return qe.Filter(should=[any_shared, qe.Filter(must=each_reader)])


def _match(key: str, value: str) -> qe.FieldCondition:
    return qe.FieldCondition(key, match=qe.MatchValue(value))
