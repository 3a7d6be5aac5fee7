"""Hybrid retrieval: dense and sparse searches, ACL-filtered, fused (workers/rag/fusion.py), and
re-ordered by a reranking server when one is configured."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from workers.rag.audience import Audience
from workers.rag.curation import UNCURATED, Curation
from workers.rag.embed import Embedder
from workers.rag.fusion import fuse, lexical_coverage
from workers.rag.index import Hit, Index
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
    dense_scores: dict[str, float]
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
        search inside the index and leans the fused ranking before any reranker."""
        depth = max(limit, self.candidates)
        dense: list[Hit] = []
        sparse: list[Hit] = []
        if mode in ("hybrid", "dense"):
            vector = self.embedder.embed_query(question)
            dense = self.index.search_dense(vector, audience, depth, curation)
        if mode in ("hybrid", "sparse"):
            sparse = self.index.search_sparse(query_vector(question), audience, depth, curation)
        if mode == "dense":
            fused = curation.lean(dense)
        elif mode == "sparse":
            fused = curation.lean(sparse)
        else:
            coverage = lexical_coverage(question, sparse[0] if sparse else None)
            fused = self._reranked(question, curation.lean(fuse(dense, sparse, coverage)))
        return Retrieval(
            hits=fused[:limit],
            dense_scores={h.chunk_id: h.score for h in dense},
            sparse_scores={h.chunk_id: h.score for h in sparse},
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
