"""Hybrid retrieval: dense and sparse searches, ACL-filtered, fused by weighted RRF.

Which side should lead differs by question, not by language: exact product terms in a manual
favour the lexical side in English too, while a long scenario question or one asked in another
language than the documents leaves nothing lexical to match. So the sparse side's weight
follows evidence the search itself returns: how much of the question the best lexical hit
covers (`lexical_coverage`). The constants were chosen leave-one-set-out on `shared/eval` and
judged by the worst set (benchmarks/retrieval_study.py, figures in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Literal

from workers.embed import Embedder
from workers.index import Hit, Index
from workers.sparse import query_vector, terms

Mode = Literal["hybrid", "dense", "sparse"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "sparse")

RRF_K = 10
CANDIDATES = 50
# The sparse side's weight is SPARSE_SCALE * coverage ** SPARSE_POWER against the dense side's 1.
SPARSE_SCALE = 6.0
SPARSE_POWER = 2.0

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


def lexical_coverage(question: str, sparse: list[Hit]) -> float:
    """Share of the question's terms found in the best lexical hit (0 when there is none)."""
    wanted = set(terms(question))
    if not wanted or not sparse:
        return 0.0
    best = sparse[0]
    return len(wanted & set(terms(f"{best.breadcrumb}\n\n{best.text}"))) / len(wanted)


def fusion_weights(question: str, sparse: list[Hit]) -> tuple[float, float]:
    """(dense, sparse) weights for this question's fusion."""
    return 1.0, SPARSE_SCALE * lexical_coverage(question, sparse) ** SPARSE_POWER


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

    def __init__(self, embedder: Embedder, index: Index, candidates: int = CANDIDATES) -> None:
        self.embedder = embedder
        self.index = index
        self.candidates = candidates

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
            dense_weight, sparse_weight = fusion_weights(question, sparse)
            fused = rrf([(dense, dense_weight), (sparse, sparse_weight)])
        return Retrieval(
            hits=fused[:limit],
            dense_scores={h.chunk_id: h.score for h in dense},
            sparse_scores={h.chunk_id: h.score for h in sparse},
        )
