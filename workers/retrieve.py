"""Hybrid retrieval: dense and sparse searches, ACL-filtered, fused by weighted RRF.

Measured on `shared/eval` (benchmarks/RESULTS.md): the dense model wins on English questions
and the lexical side on Korean ones, and an equal-weight fusion loses to the better side on
both. So each side's weight follows the share of Hangul in the question: English questions
lean on the dense ranking, Korean ones on the lexical ranking. Language-free rules (weights that
follow how much of the question the best lexical hit covers, or how far each side's best hit
stands out) were measured leave-one-set-out on all three sets and none yet holds up as well on
the worst set (benchmarks/retrieval_study.py; figures in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Literal

from workers.embed import Embedder
from workers.index import Hit, Index
from workers.rerank import RemoteReranker, RerankError
from workers.sparse import query_vector

Mode = Literal["hybrid", "dense", "sparse"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "sparse")

RRF_K = 10
CANDIDATES = 50
RERANK_TOP = 20  # fused passages a reranker (when configured) re-orders
# (dense, sparse) weights at the two ends of the Hangul share; interpolated in between.
ENGLISH_WEIGHTS = (3.0, 1.0)
KOREAN_WEIGHTS = (1.0, 3.0)

log = logging.getLogger(__name__)

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Retrieval:
    """Fused hits plus each side's raw scores, which relevance checks need."""

    hits: list[Hit]
    dense_scores: dict[str, float]
    sparse_scores: dict[str, float]


def hangul_share(text: str) -> float:
    letters = _LETTER.findall(text)
    if not letters:
        return 0.0
    return sum(1 for ch in letters if _HANGUL.match(ch)) / len(letters)


def fusion_weights(question: str) -> tuple[float, float]:
    share = hangul_share(question)
    dense = ENGLISH_WEIGHTS[0] + share * (KOREAN_WEIGHTS[0] - ENGLISH_WEIGHTS[0])
    sparse = ENGLISH_WEIGHTS[1] + share * (KOREAN_WEIGHTS[1] - ENGLISH_WEIGHTS[1])
    return dense, sparse


def rrf(rankings: list[tuple[list[Hit], float]], k: int = RRF_K) -> list[Hit]:
    """Weighted reciprocal rank fusion; ties keep the first ranking's order."""
    scores: dict[str, float] = {}
    first_seen: dict[str, Hit] = {}
    for hits, weight in rankings:
        for rank, hit in enumerate(hits):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (k + rank + 1)
            first_seen.setdefault(hit.chunk_id, hit)
    ordered = sorted(scores, key=lambda chunk_id: -scores[chunk_id])
    return [replace(first_seen[c], score=scores[c]) for c in ordered]


class Retriever:
    """Finds the passages a reader may see that best match a question."""

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
        principals: Collection[str],
        limit: int = 10,
        mode: Mode = "hybrid",
    ) -> Retrieval:
        depth = max(limit, self.candidates)
        dense: list[Hit] = []
        sparse: list[Hit] = []
        if mode in ("hybrid", "dense"):
            dense = self.index.search_dense(self.embedder.embed_query(question), principals, depth)
        if mode in ("hybrid", "sparse"):
            sparse = self.index.search_sparse(query_vector(question), principals, depth)
        if mode == "dense":
            fused = dense
        elif mode == "sparse":
            fused = sparse
        else:
            dense_weight, sparse_weight = fusion_weights(question)
            fused = self._reranked(question, rrf([(dense, dense_weight), (sparse, sparse_weight)]))
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
