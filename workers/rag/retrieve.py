"""Hybrid retrieval: dense and sparse searches, ACL-filtered, fused (workers/rag/fusion.py), and
re-ordered by a reranking server when one is configured."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from workers.rag.audience import Audience
from workers.rag.curation import UNCURATED, Curation
from workers.rag.embed import Embedder
from workers.rag.fusion import fuse, lean, lexical_coverage
from workers.rag.index import Candidate, Hit, Index
from workers.rag.rerank import RemoteReranker, RerankError
from workers.rag.retrieval_modes import Mode
from workers.rag.sparse import query_vector

CANDIDATES = 50  # passages each side returns; fusion's standard scores are taken over these
RERANK_TOP = 20  # fused passages a reranker (when configured) re-orders

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retrieval:
    """Fused hits plus each side's raw scores, which relevance checks need."""

    hits: list[Hit]
    dense_scores: dict[str, float]  # by point id
    sparse_scores: dict[str, float]


class Retriever:
    """Finds the passages an audience may see that best match a question."""

    def __init__(
        self,
        embedder: Embedder,
        index: Index,
        candidates: int = CANDIDATES,
        reranker: RemoteReranker | None = None,
        rerank_top: int = RERANK_TOP,
    ) -> None:
        self.embedder = embedder
        self.index = index
        self.candidates = candidates
        self.reranker = reranker
        self.rerank_top = rerank_top

    def search(
        self,
        question: str,
        audience: Audience,
        limit: int = 10,
        mode: Mode = "hybrid",
        curation: Curation = UNCURATED,
    ) -> Retrieval:
        """`curation` (a conversation's scope, admins' document preferences) narrows the
        search inside the index and leans the fused ranking before any reranker.

        Both searches return scores only; passages are read for the best sparse candidate (the
        lexical coverage needs its text) and for those that survive fusion, since reading a
        passage costs more than finding it."""
        depth = max(limit, self.candidates)
        dense: list[Candidate] = []
        sparse: list[Candidate] = []
        if mode in ("hybrid", "dense"):
            vector = self.embedder.embed_query(question)
            dense = self.index.search_dense(vector, audience, depth, curation)
        if mode in ("hybrid", "sparse"):
            sparse = self.index.search_sparse(query_vector(question), audience, depth, curation)
        if mode == "dense":
            ranked = dense
        elif mode == "sparse":
            ranked = sparse
        else:
            best = self.index.hits(sparse[:1])
            ranked = fuse(dense, sparse, lexical_coverage(question, best[0] if best else None))
        if curation.leans:
            links = self.index.linked(ranked, curation.boosted | curation.buried)
            boosted = {point for point, url in links.items() if url in curation.boosted}
            ranked = lean(ranked, boosted, links.keys() - boosted)
        reranked = self.rerank_top if self.reranker is not None and mode == "hybrid" else 0
        hits = self.index.hits(ranked[: max(limit, reranked)])
        if mode == "hybrid":
            hits = self._reranked(question, hits)
        return Retrieval(
            hits=hits[:limit],
            dense_scores={c.point_id: c.score for c in dense},
            sparse_scores={c.point_id: c.score for c in sparse},
        )

    def _reranked(self, question: str, fused: list[Hit]) -> list[Hit]:
        """The fused top passages in the reranker's order; the fused order if it fails."""
        if self.reranker is None or len(fused) < 2:
            return fused
        head, tail = fused[: self.rerank_top], fused[self.rerank_top :]
        texts = [f"{hit.breadcrumb}\n\n{hit.text}" if hit.breadcrumb else hit.text for hit in head]
        try:
            order = self.reranker.order(question, texts)
        except RerankError as exc:
            log.warning("keeping the fused order: %s", exc)
            return fused
        return [head[i] for i in order] + tail
