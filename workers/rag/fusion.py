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

import math
from collections.abc import Collection, Sequence
from typing import Protocol, Self, TypeVar

from workers.rag.index import Hit
from workers.rag.sparse import terms


class Ranked(Protocol):
    """A scored passage: a search's `Candidate`, or a `Hit`."""

    @property
    def key(self) -> str: ...

    @property
    def score(self) -> float: ...

    def rescored(self, score: float) -> Self: ...


R = TypeVar("R", bound=Ranked)

# How far an admin's boost lifts (and a burial lowers) a passage: in standard deviations of the
# fused candidates' scores. One is enough to reorder near-ties and not enough to overturn a
# clear lead (benchmarks/feedback_ranking.py measures both). The relevance checks that follow
# use the raw similarities, so a boost cannot make an irrelevant passage relevant.
PRIOR_SPREADS = 1.0

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
    dense: Sequence[R],
    sparse: Sequence[R],
    coverage: float,
    dense_share: float = DENSE_SHARE,
    coverage_power: float = COVERAGE_POWER,
) -> list[R]:
    """One ranking of both lists' passages; ties keep the dense list's order first."""
    lexical_weight = (1.0 - dense_share) * coverage**coverage_power
    scores: dict[str, float] = {}
    first_seen: dict[str, R] = {}
    for ranked, weight in ((dense, dense_share), (sparse, lexical_weight)):
        for passage in ranked:
            first_seen.setdefault(passage.key, passage)
            scores.setdefault(passage.key, 0.0)
        if not ranked or weight == 0.0:
            continue
        values = [passage.score for passage in ranked]
        spread = _spread(values) or 1.0
        lowest = min(values)
        for passage in ranked:
            scores[passage.key] += weight * (passage.score - lowest) / spread
    ordered = sorted(scores, key=lambda key: -scores[key])
    return [first_seen[key].rescored(scores[key]) for key in ordered]


def _spread(values: Sequence[float]) -> float:
    """The population standard deviation, in plain floats: `statistics.pstdev` computes it
    exactly with fractions, which cost more than the rest of a fusion on 100 passages."""
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((value - mean) ** 2 for value in values) / len(values))


def lean(ranked: Sequence[R], boosted: Collection[str], buried: Collection[str]) -> list[R]:
    """The ranking with a bounded prior: passages whose key is in `boosted` move up, those in
    `buried` down, by `PRIOR_SPREADS` standard deviations of the scores."""
    if not (boosted or buried) or len(ranked) < 2:
        return list(ranked)
    shift = PRIOR_SPREADS * (_spread([passage.score for passage in ranked]) or 1.0)
    leaned = [
        passage.rescored(passage.score + shift * ((p in boosted) - (p in buried)))
        for passage, p in ((passage, passage.key) for passage in ranked)
    ]
    return sorted(leaned, key=lambda passage: -passage.score)
