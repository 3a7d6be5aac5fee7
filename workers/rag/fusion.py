"""How the dense and the lexical rankings become one, from evidence in the rankings themselves.

Each side's scores become standard scores over its own candidate list, so a side whose best
passages stand far above the rest of its list counts for more than a side whose list is flat;
a passage missing from one list gets that list's lowest score. The lexical side is further
scaled by how much of the question its best passage covers: near nothing when no word of the
question can match (an English question over Korean pages), all of it when one passage holds
every term (a manual's exact wording). Nothing here looks at the question's language: weights
that followed it were fitted to the visible sets and failed on an English manual.

The two constants were chosen leave-one-set-out across `shared/eval`, by the best worst set
(benchmarks/retrieval_study.py; figures in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace

from workers.rag.index import Hit
from workers.rag.sparse import terms

DENSE_SHARE = 0.3  # the dense side's share of the weight; the lexical side has the rest
COVERAGE_POWER = 1.0  # how sharply partial lexical coverage discounts the lexical side


def lexical_coverage(question: str, best: Hit | None) -> float:
    """The share of the question's distinct terms that `best` (its breadcrumb and text) holds."""
    wanted = set(terms(question))
    if not wanted or best is None:
        return 0.0
    held = set(terms(f"{best.breadcrumb}\n\n{best.text}"))
    return len(wanted & held) / len(wanted)


def fuse(
    dense: Sequence[Hit],
    sparse: Sequence[Hit],
    coverage: float,
    dense_share: float = DENSE_SHARE,
    coverage_power: float = COVERAGE_POWER,
) -> list[Hit]:
    """One ranking of both lists' passages; ties keep the dense list's order first."""
    lexical_weight = (1.0 - dense_share) * coverage**coverage_power
    scores: dict[str, float] = {}
    first_seen: dict[str, Hit] = {}
    for hits, weight in ((dense, dense_share), (sparse, lexical_weight)):
        for hit in hits:
            first_seen.setdefault(hit.chunk_id, hit)
            scores.setdefault(hit.chunk_id, 0.0)
        if not hits or weight == 0.0:
            continue
        values = [hit.score for hit in hits]
        spread = statistics.pstdev(values) or 1.0
        lowest = min(values)
        for hit in hits:
            scores[hit.chunk_id] += weight * (hit.score - lowest) / spread
    ordered = sorted(scores, key=lambda chunk_id: -scores[chunk_id])
    return [replace(first_seen[c], score=scores[c]) for c in ordered]
