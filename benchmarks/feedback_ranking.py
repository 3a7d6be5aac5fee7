"""Feedback that changes ranking: what admins' boosts and burials do to the eval sets.

Usage: python -m benchmarks.feedback_ranking [EVAL_DIR]   (after `python -m benchmarks.eval_cache`)

Each set's corpus is indexed into a throw-away embedded index (vectors from the eval cache, so no
model runs) and every question searched as `ragbot eval` does, in four rounds:

1. no curation at all (the figures `ragbot eval` reports);
2. the curation an answer reads when no admin has given feedback (must equal round 1);
3. half the questions (chosen at random, fixed seed) have their gold documents boosted, as an
   admin would after a 👍; figures for that half and, separately, for the other half, whose
   results the boosted documents may now crowd;
4. for every question whose first passage is not gold, that passage's document is buried, as an
   admin would after a 👎; figures for those questions and for all.

A hit is a retrieved chunk whose document is gold; ranks are over chunks.
"""

from __future__ import annotations

import hashlib
import random
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.eval_cache import CACHE, SETS, LocalModelStandIn
from connectors.base import Checkpoint, Document, PollItem
from workers.evaluate import PUBLIC_READER, CorpusConnector, load_jsonl
from workers.ingest.state import FileStateStore
from workers.ingest.sync import Syncer
from workers.rag.chunking import Chunker
from workers.rag.curation import UNCURATED, Curation, DocumentPreferences
from workers.rag.embed import LocalE5Embedder, Vectors
from workers.rag.index_edge import EdgeIndex
from workers.rag.retrieve import Retriever
from workers.rag.tokens import counter_for_model

DEPTH = 10
SEED = 17


class CachedEmbedder(LocalModelStandIn):
    """The local model's vectors from the eval cache; the model itself only for a miss."""

    def __init__(self, set_name: str) -> None:
        stored = np.load(CACHE / f"{set_name}.npz")
        self.cached = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
        self.misses = 0
        self._model: LocalE5Embedder | None = None

    def _vector(self, key: str, text: str, query: bool) -> Vectors:
        found = self.cached.get(key)
        if found is not None:
            return np.asarray(found, np.float32)
        self.misses += 1
        self._model = self._model or LocalE5Embedder()
        if query:
            return self._model.embed_query(text)
        return self._model.embed_passages([text])[0]

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        rows = [self._vector("p:" + _key(text), text, False) for text in texts]
        return np.vstack(rows) if rows else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> Vectors:
        return self._vector("q:" + _key(text), text, True)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class LinkedCorpus(CorpusConnector):
    """The eval corpus with a link of its own per document (boosts and burials name documents
    by link; a set's own links may be missing, or shared by the sections of one page)."""

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        for item in super().poll(checkpoint):
            if isinstance(item, Document):
                item = replace(item, url=link(item.id))
            yield item


def link(document_id: str) -> str:
    return f"eval://{document_id}"


def first_gold_rank(
    retriever: Retriever, question: dict[str, Any], curation: Curation
) -> tuple[int | None, str | None]:
    """The rank of the first gold passage (None: not in the top DEPTH), and the first passage's
    document."""
    gold = {str(g) for g in question["gold"]}
    hits = retriever.search(str(question["question"]), PUBLIC_READER, DEPTH, curation=curation)
    ranks = [rank for rank, hit in enumerate(hits.hits) if hit.document_id in gold]
    return (ranks[0] if ranks else None), (hits.hits[0].document_id if hits.hits else None)


def figures(ranks: Sequence[int | None]) -> str:
    if not ranks:
        return "n=0"
    n = len(ranks)
    hit1 = sum(r == 0 for r in ranks) / n
    hit5 = sum(r is not None and r < 5 for r in ranks) / n
    mrr = sum(1 / (r + 1) for r in ranks if r is not None) / n
    return f"n={n}: hit@1 {hit1:.3f}, hit@5 {hit5:.3f}, MRR@10 {mrr:.3f}"


def study(eval_dir: Path, name: str) -> None:
    corpus = load_jsonl(eval_dir / name / "corpus.jsonl", ("id", "text"))
    questions = load_jsonl(eval_dir / name / "queries.jsonl", ("id", "question", "gold"))
    embedder = CachedEmbedder(name)
    chunker = Chunker(counter_for_model("gpt-4o-mini"))
    with tempfile.TemporaryDirectory(prefix="ragbot-feedback-") as workdir:
        index = EdgeIndex(Path(workdir) / "index", embedder.dim)
        try:
            state = FileStateStore(Path(workdir) / "state.json")
            Syncer(index, embedder, chunker, state).sync(LinkedCorpus(corpus))
            retriever = Retriever(embedder, index)
            run(name, questions, retriever)
        finally:
            index.close()
    print(f"  ({embedder.misses} texts were not in the eval cache and were embedded)")


def run(name: str, questions: list[dict[str, Any]], retriever: Retriever) -> None:
    baseline = [first_gold_rank(retriever, q, UNCURATED) for q in questions]
    no_feedback = DocumentPreferences().with_places(())
    unchanged = [first_gold_rank(retriever, q, no_feedback) for q in questions]
    print(f"## {name}")
    print(f"  1. no curation:              {figures([r for r, _ in baseline])}")
    print(f"  2. no feedback given:        {figures([r for r, _ in unchanged])}")
    assert unchanged == baseline, "without feedback the ranking must not move"

    chosen = set(random.Random(SEED).sample(range(len(questions)), len(questions) // 2))
    boosted = {link(str(g)) for i in chosen for g in questions[i]["gold"]}
    boost = DocumentPreferences(dict.fromkeys(boosted, "boost")).with_places(())
    after = [first_gold_rank(retriever, q, boost)[0] for q in questions]
    before_in = [baseline[i][0] for i in sorted(chosen)]
    after_in = [after[i] for i in sorted(chosen)]
    others = [i for i in range(len(questions)) if i not in chosen]
    print(f"  3. gold boosted, that half:  before {figures(before_in)}")
    print(f"                               after  {figures(after_in)}")
    print(f"     the other half:           before {figures([baseline[i][0] for i in others])}")
    print(f"                               after  {figures([after[i] for i in others])}")

    wrong_first = {
        link(top)
        for (rank, top), q in zip(baseline, questions, strict=True)
        if rank != 0 and top is not None and top not in {str(g) for g in q["gold"]}
    }
    bury = DocumentPreferences(dict.fromkeys(wrong_first, "bury")).with_places(())
    buried = [first_gold_rank(retriever, q, bury)[0] for q in questions]
    missed = [i for i, (rank, _) in enumerate(baseline) if rank != 0]
    print(f"  4. wrong first buried ({len(wrong_first)} documents), those questions:")
    print(f"                               before {figures([baseline[i][0] for i in missed])}")
    print(f"                               after  {figures([buried[i] for i in missed])}")
    print(f"     all questions:            before {figures([r for r, _ in baseline])}")
    print(f"                               after  {figures(buried)}")


def main() -> None:
    eval_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/eval")
    for name in SETS:
        if (CACHE / f"{name}.npz").exists():
            study(eval_dir, name)
        else:
            print(f"## {name}: not in the eval cache (python -m benchmarks.eval_cache); skipped")


if __name__ == "__main__":
    main()
