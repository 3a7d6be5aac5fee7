"""How to fuse the dense and sparse rankings, chosen leave-one-set-out and judged by the worst set.

Usage: python -m benchmarks.retrieval_study [EVAL_DIR]   (after `python -m benchmarks.eval_cache`)

Scores every question of every set offline from the cached embeddings: dense = cosine over all
chunks; sparse = our sparse vectors with BM25 IDF as the index applies it. Then, for each
candidate fusion, hit@5 and MRR@10 over chunks (a hit is a chunk of a gold document), and its
margin over the better half of the same set. For each held-out set, the candidate with the best
worst margin on the *other* sets is picked and reported on the held-out one.
"""

from __future__ import annotations

import math
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from benchmarks.eval_cache import SETS, EmbeddedSet, load
from workers.rag.answer import MAX_SOURCES, relevant_hits
from workers.rag.embed import LocalE5Embedder
from workers.rag.fusion import COVERAGE_POWER, DENSE_SHARE
from workers.rag.index import Hit
from workers.rag.language import hangul_share
from workers.rag.retrieve import CANDIDATES, Retrieval
from workers.rag.sparse import BM25_B, BM25_K1, _index, terms

DEPTH = CANDIDATES
LANGUAGE = "language-weighted rrf k10 (reference)"
SHIPPED = f"z-score dense {DENSE_SHARE:g} coverage^{COVERAGE_POWER:g}"
RUNNING = -1.0  # `average` value: a running mean in write order, seeded with one chunk of 250
RUNNING_SEED = 250.0
Table = dict[str, dict[str, tuple[float, float, float]]]


class Evidence(NamedTuple):
    """What a fusion may know of a question besides the two lists."""

    text: str
    # Share of the question's terms that the best sparse hit holds (how decisive the lexical
    # side is for this question; near 0 when nothing lexical can match, e.g. across languages).
    coverage: float
    # The same share weighted by each term's IDF (a rare term held counts for more).
    idf_coverage: float
    # How the dense side rates the lexical side's best passage: 1 when it is the dense side's
    # own best, 0 at or below the dense list's lowest (the lists agree, or they do not).
    agreement: float


@dataclass
class Lists:
    """Per question: the top chunk indices and scores of each side."""

    dense: list[tuple[np.ndarray, np.ndarray]]
    sparse: list[tuple[np.ndarray, np.ndarray]]
    doc_of: list[str]
    golds: list[set[str]]
    evidence: list[Evidence]


def sparse_matrix(
    texts: list[str], average: float | None
) -> tuple[list[dict[int, float]], dict[int, float]]:
    counted = [Counter(terms(t)) for t in texts]
    lengths = [sum(c.values()) for c in counted]
    avg = average or (sum(lengths) / max(len(lengths), 1))
    weights: list[dict[int, float]] = []
    df: Counter[int] = Counter()
    seen = 0
    for counts, length in zip(counted, lengths, strict=True):
        if average == RUNNING:  # as one first sync would see it: the mean of what came before
            avg = (RUNNING_SEED + sum(lengths[:seen])) / (seen + 1)
            seen += 1
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / avg)
        row: dict[int, float] = defaultdict(float)
        for term, tf in counts.items():
            row[_index(term)] += tf * (BM25_K1 + 1) / (tf + norm)
        weights.append(dict(row))
        df.update(row.keys())
    n = len(texts)
    idf = {i: math.log(1 + (n - d + 0.5) / (d + 0.5)) for i, d in df.items()}
    return weights, idf


def build_lists(
    data: EmbeddedSet, average: float | None, asking: EmbeddedSet | None = None
) -> Lists:
    """Both sides' top lists for `asking`'s questions (default: the set's own) over `data`."""
    asking = asking or data
    texts = [c.embed_text for c in data.chunks]
    weights, idf = sparse_matrix(texts, average)
    postings: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for row_index, row in enumerate(weights):
        for term, weight in row.items():
            postings[term].append((row_index, weight))
    chunks = data.chunk_vectors / np.linalg.norm(data.chunk_vectors, axis=1, keepdims=True)
    dense, sparse = [], []
    evidence: list[Evidence] = []
    unseen_idf = math.log(1 + (len(texts) + 0.5) / 0.5)  # a term no passage holds
    for question, vector in zip(asking.questions, asking.question_vectors, strict=True):
        cosine = chunks @ (vector / np.linalg.norm(vector))
        dense_top = np.argsort(-cosine)[:DEPTH]
        dense.append((dense_top, cosine[dense_top]))
        scores = np.zeros(len(texts))
        for term in {_index(t) for t in terms(question)}:
            for row_index, weight in postings.get(term, ()):
                scores[row_index] += idf[term] * weight
        top = np.argsort(-scores)[:DEPTH]
        keep = scores[top] > 0
        sparse.append((top[keep], scores[top][keep]))
        wanted = set(terms(question))
        best = set(terms(texts[int(top[0])])) if keep[0] else set()
        rarity = {t: idf.get(_index(t), unseen_idf) for t in wanted}
        low = float(cosine[dense_top].min())
        rated = float(cosine[int(top[0])]) - low if keep[0] else 0.0
        evidence.append(
            Evidence(
                text=question,
                coverage=len(wanted & best) / len(wanted) if wanted else 0.0,
                idf_coverage=sum(rarity[t] for t in wanted & best) / (sum(rarity.values()) or 1),
                agreement=min(max(rated / (float(cosine[dense_top[0]]) - low or 1e-9), 0.0), 1.0),
            )
        )
    return Lists(dense, sparse, [c.document_id for c in data.chunks], asking.golds, evidence)


def answered_share(data: EmbeddedSet, lists: Lists, fuse: Fusion) -> float:
    """Share of questions for which the shipped relevance check keeps at least one passage."""
    embedder = LocalE5Embedder.__new__(LocalE5Embedder)  # thresholds only; no model load
    when = datetime.now(UTC)
    answered = 0
    for dense, sparse, evidence in zip(lists.dense, lists.sparse, lists.evidence, strict=True):
        order = fuse(dense, sparse, evidence)[:MAX_SOURCES]
        hits = [
            Hit(
                chunk_id=str(i),
                document_id=data.chunks[i].document_id,
                source="eval",
                title="",
                url="",
                updated_at=when,
                text=data.chunks[i].text,
                breadcrumb=data.chunks[i].breadcrumb,
                score=0.0,
            )
            for i in order
        ]
        retrieval = Retrieval(
            hits=hits,
            dense_scores={str(int(i)): float(v) for i, v in zip(*dense, strict=True)},
            sparse_scores={},
        )
        kept = relevant_hits(
            evidence.text, retrieval, embedder.close_similarity, embedder.floor_similarity
        )
        answered += bool(kept)
    return answered / len(lists.evidence)


def per_question(lists: Lists, ranked: list[list[int]]) -> np.ndarray:
    """(questions × 2): hit@5 and reciprocal rank within the top 10 of each question."""
    out = np.zeros((len(ranked), 2))
    for row, (order, gold) in enumerate(zip(ranked, lists.golds, strict=True)):
        for rank, chunk in enumerate(order[:10]):
            if lists.doc_of[chunk] in gold:
                out[row] = (rank < 5, 1 / (rank + 1))
                break
    return out


def metrics(lists: Lists, ranked: list[list[int]]) -> tuple[float, float]:
    hit5, mrr = per_question(lists, ranked).mean(axis=0)
    return float(hit5), float(mrr)


def paired_interval(
    ours: np.ndarray, theirs: np.ndarray, samples: int = 5000, seed: int = 12
) -> list[tuple[float, float]]:
    """95% paired-bootstrap intervals of ours − theirs (hit@5, MRR@10) over the questions: how
    far a margin of a question or two is from noise."""
    draws = np.random.default_rng(seed).integers(0, len(ours), (samples, len(ours)))
    differences = (ours - theirs)[draws].mean(axis=1)
    low, high = np.percentile(differences, [2.5, 97.5], axis=0)
    return [(float(a), float(b)) for a, b in zip(low, high, strict=True)]


Side = tuple[np.ndarray, np.ndarray]
Fusion = Callable[[Side, Side, Evidence], list[int]]


def rrf(wd: float, ws: float, k: float) -> Fusion:
    def fuse(dense, sparse, question):  # type: ignore[no-untyped-def]
        scores: dict[int, float] = defaultdict(float)
        for weight, (ids, _) in ((wd, dense), (ws, sparse)):
            for rank, chunk in enumerate(ids):
                scores[int(chunk)] += weight / (k + rank + 1)
        return sorted(scores, key=lambda c: -scores[c])

    return fuse


def decisiveness(values: np.ndarray, depth: int) -> float:
    """How far the top score stands out of the rest of the side's own list (0 when flat)."""
    if len(values) < 2:
        return 0.0
    rest = values[1 : depth + 1]
    spread = float(np.std(values[: depth + 1])) or 1e-9
    return max(float(values[0] - rest.mean()) / spread, 0.0)


def adaptive(k: float, depth: int, power: float, floor: float) -> Fusion:
    """Weighted RRF whose weights follow each side's decisiveness for this question."""

    def fuse(dense, sparse, question):  # type: ignore[no-untyped-def]
        d = decisiveness(dense[1], depth) ** power
        s = decisiveness(sparse[1], depth) ** power if len(sparse[1]) else 0.0
        total = d + s or 1.0
        wd, ws = floor + d / total, floor + s / total
        return rrf(wd, ws, k)(dense, sparse, question)

    return fuse


def normalized(alpha: float) -> Fusion:
    """Convex mix of min-max normalised scores over each side's own top list."""

    def fuse(dense, sparse, question):  # type: ignore[no-untyped-def]
        scores: dict[int, float] = defaultdict(float)
        for weight, (ids, values) in ((alpha, dense), (1 - alpha, sparse)):
            if not len(values):
                continue
            low, high = float(values.min()), float(values.max())
            for chunk, value in zip(ids, values, strict=True):
                scores[int(chunk)] += weight * ((value - low) / ((high - low) or 1.0))
        return sorted(scores, key=lambda c: -scores[c])

    return fuse


def covered(k: float, scale: float, power: float) -> Fusion:
    """Weighted RRF: the sparse side counts as much as its best hit covers the question."""

    def fuse(dense, sparse, question):  # type: ignore[no-untyped-def]
        return rrf(1.0, scale * question.coverage**power, k)(dense, sparse, question)

    return fuse


def both(k: float, scale: float, power: float, lead: float) -> Fusion:
    """As `covered`, and the dense side counts more the further its best hit stands out."""

    def fuse(dense, sparse, question):  # type: ignore[no-untyped-def]
        values = dense[1]
        margin = float(values[0] - values[1:10].mean()) if len(values) > 2 else 0.0
        dense_weight = 1.0 + lead * margin / 0.01
        return rrf(dense_weight, scale * question.coverage**power, k)(dense, sparse, question)

    return fuse


def gap_covered(k: float, scale: float, power: float, depth: int) -> Fusion:
    """Sparse weight = how far its best score stands above its `depth`-th (relative), times
    how much of the question the best lexical hit covers."""

    def fuse(dense, sparse, question):  # type: ignore[no-untyped-def]
        values = sparse[1]
        last = min(depth, len(values) - 1)
        gap = float((values[0] - values[last]) / values[0]) if last > 0 else 0.0
        return rrf(1.0, scale * gap**power * question.coverage, k)(dense, sparse, question)

    return fuse


def standardised(
    dense_share: float, power: float, weighed_by: str = "coverage", agreement: float = 0.0
) -> Fusion:
    """Score fusion: each side's scores as z-scores over its own list (a chunk missing from a
    list gets that list's lowest), the sparse side scaled by coverage ** power (`weighed_by`:
    plain or IDF-weighted coverage) and by the dense side's agreement ** `agreement`."""

    def fuse(dense, sparse, question):  # type: ignore[no-untyped-def]
        scores: dict[int, float] = defaultdict(float)
        lexical = getattr(question, weighed_by) ** power * question.agreement**agreement
        sides = ((dense_share, dense), ((1 - dense_share) * lexical, sparse))
        for weight, (ids, values) in sides:
            if not len(values) or weight == 0:
                continue
            spread = float(values.std()) or 1.0
            for chunk, value in zip(ids, values, strict=True):
                scores[int(chunk)] += weight * float(value - values.min()) / spread
        for chunk in dense[0]:
            scores.setdefault(int(chunk), 0.0)
        return sorted(scores, key=lambda c: -scores[c])

    return fuse


def language(k: float) -> Fusion:
    """The shipped fusion: weights follow the question's Hangul share (workers/rag/retrieve.py)."""

    def fuse(dense, sparse, question):  # type: ignore[no-untyped-def]
        share = hangul_share(question.text)
        return rrf(3.0 - 2.0 * share, 1.0 + 2.0 * share, k)(dense, sparse, question)

    return fuse


def head_guarded(fusion: Fusion, slots: int) -> Fusion:
    """`fusion`, with each side's best passage kept within the first `slots` places (the lexical
    side's only when it covers some of the question)."""

    def fuse(dense, sparse, question):  # type: ignore[no-untyped-def]
        order = fusion(dense, sparse, question)
        bests = [int(dense[0][0])] + ([int(sparse[0][0])] if question.coverage > 0 else [])
        missing = [c for c in dict.fromkeys(bests) if c not in order[:slots]]
        head = [c for c in order[:slots] if c not in missing][: slots - len(missing)] + missing
        return head + [c for c in order if c not in head]

    return fuse


def candidates() -> dict[str, Fusion]:
    found: dict[str, Fusion] = {LANGUAGE: language(10)}
    for k in (10, 30, 60):
        for wd, ws in ((1, 1), (2, 1), (1, 2), (3, 2), (2, 3)):
            found[f"rrf {wd}:{ws} k{k}"] = rrf(wd, ws, k)
        for depth in (5, 10, 20):
            for power in (1.0, 2.0):
                for floor in (0.0, 0.25, 0.5):
                    found[f"adaptive k{k} d{depth} p{power:g} f{floor:g}"] = adaptive(
                        k, depth, power, floor
                    )
        for scale in (1.0, 2.0, 3.0, 4.0, 6.0):
            for power in (1.0, 2.0, 3.0, 4.0):
                found[f"covered k{k} s{scale:g} p{power:g}"] = covered(k, scale, power)
                for lead in (0.25, 0.5, 1.0):
                    found[f"both k{k} s{scale:g} p{power:g} l{lead:g}"] = both(
                        k, scale, power, lead
                    )
        for scale in (3.0, 5.0, 8.0, 12.0):
            for power in (0.5, 1.0, 2.0):
                for depth in (4, 9, 19):
                    found[f"gap-covered k{k} s{scale:g} p{power:g} d{depth}"] = gap_covered(
                        k, scale, power, depth
                    )
    for alpha in (0.3, 0.4, 0.5, 0.6, 0.7):
        found[f"minmax a{alpha:g}"] = normalized(alpha)
    for share in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6):
        for power in (0.0, 0.5, 1.0, 1.5, 2.0):
            found[f"z-score dense {share:g} coverage^{power:g}"] = standardised(share, power)
            found[f"z-score dense {share:g} idf-coverage^{power:g}"] = standardised(
                share, power, "idf_coverage"
            )
            for agreement in (0.5, 1.0, 2.0):
                found[f"z-score dense {share:g} coverage^{power:g} agreement^{agreement:g}"] = (
                    standardised(share, power, agreement=agreement)
                )
            for slots in (3, 5):
                found[f"z-score dense {share:g} coverage^{power:g}, bests in top {slots}"] = (
                    head_guarded(standardised(share, power), slots)
                )
    return found


def main() -> None:
    eval_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/eval")
    sets = {name: load(eval_dir, name) for name in SETS}
    # The sparse side as the index builds it (BM25 normalised by the running mean length); the
    # fixed and corpus-wide averages were compared before (RESULTS.md) and are not re-run.
    for average_label, average in (("running average of one first sync", RUNNING),):
        print(f"\n## sparse: BM25 with the {average_label}")
        lists = {name: build_lists(data, average) for name, data in sets.items()}
        halves = {}
        for name, side in lists.items():
            d = metrics(side, [list(map(int, ids)) for ids, _ in side.dense])
            s = metrics(side, [list(map(int, ids)) for ids, _ in side.sparse])
            halves[name] = (max(d[0], s[0]), max(d[1], s[1]))
            print(f"{name}: dense {d[0]:.3f}/{d[1]:.3f}  sparse {s[0]:.3f}/{s[1]:.3f}")
        table: Table = {}
        fusions = candidates()
        for label, fuse in fusions.items():
            table[label] = {}
            for name, side in lists.items():
                h, m = metrics(side, fused(side, fuse))
                table[label][name] = (h, m, min(h - halves[name][0], m - halves[name][1]))

        report(table)
        uncertainty(lists, fusions[SHIPPED])
        calibration(sets, lists, average, fusions, (SHIPPED, LANGUAGE))


def fused(lists: Lists, fuse: Fusion) -> list[list[int]]:
    pairs = zip(lists.dense, lists.sparse, lists.evidence, strict=True)
    return [fuse(dense, sparse, evidence) for dense, sparse, evidence in pairs]


def uncertainty(lists: dict[str, Lists], shipped: Fusion) -> None:
    """The shipped fusion against each half, per set, with paired-bootstrap intervals."""
    print("shipped − each half, hit@5 and MRR@10 (95% paired-bootstrap interval):")
    for name, side in lists.items():
        ours = per_question(side, fused(side, shipped))
        for half, ranked in (("dense", side.dense), ("sparse", side.sparse)):
            theirs = per_question(side, [list(map(int, ids)) for ids, _ in ranked])
            margins = (ours - theirs).mean(axis=0)
            (h_low, h_high), (m_low, m_high) = paired_interval(ours, theirs)
            print(
                f"  {name} vs {half}: hit@5 {margins[0]:+.3f} [{h_low:+.3f}, {h_high:+.3f}]"
                f"  MRR@10 {margins[1]:+.3f} [{m_low:+.3f}, {m_high:+.3f}]"
            )


def report(table: Table) -> None:
    """Leave-one-set-out picks among the language-free candidates (weights that follow the
    question's language are the reference, not a choice: they failed on an English manual), for
    all of them and for the shipped family alone; then the best worst-set margins."""

    def worst(label: str, among: tuple[str, ...] | list[str]) -> list[float]:
        """The margins from the worst set up: the worst decides, the next breaks ties."""
        return sorted(table[label][s][2] for s in among)

    def row(label: str) -> str:
        cells = [table[label][s] for s in SETS]
        return "  ".join(
            f"{s} {h:.3f}/{m:.3f} ({g:+.3f})" for s, (h, m, g) in zip(SETS, cells, strict=True)
        )

    allowed = [c for c in table if c != LANGUAGE]
    family = [c for c in allowed if c.startswith("z-score")]
    for title, among in (("all language-free candidates", allowed), ("z-score family", family)):
        print(f"leave-one-set-out, {title}:")
        for held_out in SETS:
            others = [s for s in SETS if s != held_out]
            best = max(among, key=lambda c: worst(c, others))
            h, m, margin = table[best][held_out]
            print(
                f"  held out {held_out}: chose [{best}] on the others -> {h:.3f}/{m:.3f}, "
                f"margin over its better half {margin:+.3f}"
            )
    ranked_labels = sorted(allowed, key=lambda c: worst(c, SETS), reverse=True)
    print(f"shipped [{SHIPPED}]: {row(SHIPPED)}")
    print(f"reference [{LANGUAGE}]: {row(LANGUAGE)}")
    print("best worst-set margins on all three sets:")
    for label in ranked_labels[:8]:
        print(f"  {label}: {row(label)}")


def calibration(
    sets: dict[str, EmbeddedSet],
    lists: dict[str, Lists],
    average: float | None,
    fusions: dict[str, Fusion],
    labels: tuple[str, ...],
) -> None:
    """Abstention: own questions left unanswered, and another set's questions answered."""
    names = list(sets)
    for label in labels:
        fuse = fusions[label]
        for name in names:
            own = 1 - answered_share(sets[name], lists[name], fuse)
            other = names[(names.index(name) + 1) % len(names)]
            foreign = build_lists(sets[name], average, asking=sets[other])
            wrong = answered_share(sets[name], foreign, fuse)
            print(
                f"[{label}] {name}: own questions abstained {own:.3f}; "
                f"{other}'s questions answered {wrong:.3f}"
            )


if __name__ == "__main__":
    main()
