"""The server backend: a Qdrant server through `qdrant-client` (`QDRANT_URL`).

Tests run the same code against qdrant-client's in-memory mode (`location=":memory:"`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException, ResponseHandlingException

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
_CLIENT_ERRORS = (ApiException, ResponseHandlingException, ConnectionError, OSError, ValueError)


class ServerIndex:
    """One collection per embedding space on a Qdrant server."""

    def __init__(self, client: QdrantClient, collection: str, dim: int) -> None:
        self._client = client
        self.collection = collection
        try:
            if not client.collection_exists(collection):
                client.create_collection(
                    collection,
                    vectors_config={
                        DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)
                    },
                    sparse_vectors_config={
                        SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                )
            # A collection made by an older version gains the fields added since.
            indexed = set(client.get_collection(collection).payload_schema)
            for field in (f for f in KEYWORD_FIELDS if f not in indexed):
                client.create_payload_index(
                    collection, field, models.PayloadSchemaType.KEYWORD, wait=True
                )
        except _CLIENT_ERRORS as exc:
            raise IndexUnavailable(f"the Qdrant server could not be reached: {exc}") from exc

    def replace_document(
        self,
        document: Document,
        chunks: Sequence[Chunk],
        dense: Vectors,
        sparse: Sequence[SparseVector],
    ) -> None:
        points = [
            models.PointStruct(
                id=p.id,
                vector={
                    DENSE: p.dense,
                    SPARSE: models.SparseVector(indices=p.sparse.indices, values=p.sparse.values),
                },
                payload=p.payload,
            )
            for p in prepare_points(document, chunks, dense, sparse)
        ]
        stale = models.Filter(
            must=[_match("document_id", document.id)],
            must_not=[_match("version", document.version)],
        )
        self._call(lambda: points and self._client.upsert(self.collection, points, wait=True))
        self._call(lambda: self._client.delete(self.collection, stale, wait=True))
        if not points:
            self.delete_document(document.id)

    def delete_document(self, document_id: str) -> None:
        selector = models.Filter(must=[_match("document_id", document_id)])
        self._call(lambda: self._client.delete(self.collection, selector, wait=True))

    def set_acl(self, document_id: str, acl: frozenset[str]) -> None:
        selector = models.Filter(must=[_match("document_id", document_id)])
        self._call(
            lambda: self._client.set_payload(
                self.collection, {"acl": sorted(acl)}, points=selector, wait=True
            )
        )

    def document_acls(self, source: str) -> dict[str, frozenset[str]]:
        return collect_acls(self._scroll(source, ["document_id", "acl"]))

    def delete_source(self, source: str) -> None:
        selector = models.Filter(must=[_match("source", source)])
        self._call(lambda: self._client.delete(self.collection, selector, wait=True))

    def document_versions(self, source: str) -> dict[str, set[str]]:
        return collect_versions(self._scroll(source, ["document_id", "version"]))

    def search_dense(
        self, vector: Vectors, audience: Audience, limit: int, curation: Curation = UNCURATED
    ) -> list[Candidate]:
        return self._search([float(x) for x in vector], DENSE, audience, limit, curation)

    def search_sparse(
        self, vector: SparseVector, audience: Audience, limit: int, curation: Curation = UNCURATED
    ) -> list[Candidate]:
        if not vector.indices:
            return []
        query = models.SparseVector(indices=vector.indices, values=vector.values)
        return self._search(query, SPARSE, audience, limit, curation)

    def document_texts(self, document_id: str) -> list[str]:
        rows = self._scroll(document_id, ["text"], key="document_id")
        return [str(row.get("text") or "") for row in rows]

    def term_statistics(self) -> tuple[int, int]:
        return sum_terms(self._scroll(None, ["terms"]))

    def stats(self, source: str) -> SourceStats:
        rows = self._scroll(source, ["document_id"])
        return SourceStats(documents=len({r["document_id"] for r in rows}), chunks=len(rows))

    def principals(self, source: str) -> set[str]:
        selector = models.Filter(must=[_match("source", source)])
        response = self._call(
            lambda: self._client.facet(
                self.collection, "acl", facet_filter=selector, limit=MAX_FACET_VALUES, exact=True
            )
        )
        return {str(hit.value) for hit in response.hits}

    def commit(self) -> None:
        """Writes are acknowledged with wait=True; the server optimises on its own."""

    def close(self) -> None:
        self._client.close()

    def hits(self, candidates: Sequence[Candidate]) -> list[Hit]:
        if not candidates:
            return []
        ids = [c.point_id for c in candidates]
        records = self._call(lambda: self._client.retrieve(self.collection, ids, with_payload=True))
        return hits_in_order(candidates, {str(r.id): r.payload or {} for r in records})

    def linked(self, candidates: Sequence[Candidate], urls: Collection[str]) -> dict[str, str]:
        if not candidates or not urls:
            return {}
        selector = models.Filter(
            must=[
                models.HasIdCondition(has_id=[c.point_id for c in candidates]),
                models.FieldCondition(key="url", match=models.MatchAny(any=sorted(urls))),
            ]
        )
        records, _ = self._call(
            lambda: self._client.scroll(
                self.collection,
                scroll_filter=selector,
                limit=len(candidates),
                with_payload=["url"],
                with_vectors=False,
            )
        )
        return {str(record.id): str((record.payload or {}).get("url")) for record in records}

    def _search(
        self, query: Any, using: str, audience: Audience, limit: int, curation: Curation
    ) -> list[Candidate]:
        if audience.reads_nothing:
            return []
        selector = _filter(audience, curation)
        response = self._call(
            lambda: self._client.query_points(
                self.collection,
                query=query,
                using=using,
                query_filter=selector,
                limit=limit,
                with_payload=False,
            )
        )
        return [Candidate(str(p.id), float(p.score)) for p in response.points]

    def _scroll(
        self, source: str | None, fields: list[str], key: str = "source"
    ) -> list[dict[str, Any]]:
        selector = models.Filter(must=[_match(key, source)]) if source else None
        rows: list[dict[str, Any]] = []
        offset: Any = None
        while True:
            records, offset = self._call(
                lambda start=offset: self._client.scroll(
                    self.collection,
                    scroll_filter=selector,
                    limit=SCROLL_PAGE,
                    offset=start,
                    with_payload=fields,
                    with_vectors=False,
                )
            )
            rows.extend(r.payload or {} for r in records)
            if offset is None:
                return rows

    def _call(self, action: Any) -> Any:
        try:
            return action()
        except _CLIENT_ERRORS as exc:
            raise IndexUnavailable(f"the Qdrant server failed: {exc}") from exc


def _filter(audience: Audience, curation: Curation) -> models.Filter:
    """Who may read it, and (when chosen) where it must live and what must not show."""
    readable = _audience_filter(audience)
    if not curation.narrows:
        return readable
    must: list[models.Condition] = [readable]
    if curation.places:
        places = models.MatchAny(any=sorted(curation.places))
        must.append(models.FieldCondition(key="places", match=places))
    must_not: list[models.Condition] = []
    if curation.hidden:
        hidden = models.MatchAny(any=sorted(curation.hidden))
        must_not.append(models.FieldCondition(key="url", match=hidden))
    return models.Filter(must=must, must_not=must_not or None)


def _audience_filter(audience: Audience) -> models.Filter:
    """`Audience.split` as a filter: a shared principal, or one of every reader's others."""
    shared, others = audience.split()
    any_shared = models.FieldCondition(key="acl", match=models.MatchAny(any=sorted(shared)))
    if not others:
        return models.Filter(must=[any_shared])
    each_reader: list[models.Condition] = [
        models.FieldCondition(key="acl", match=models.MatchAny(any=sorted(rest))) for rest in others
    ]
    if not shared:
        return models.Filter(must=each_reader)
    return models.Filter(should=[any_shared, models.Filter(must=each_reader)])


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))
