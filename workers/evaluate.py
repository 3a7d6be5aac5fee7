"""Retrieval quality on a question set with gold passages (`ragbot eval`).

The corpus is indexed into a throw-away embedded index with the same chunker and embedders as
production, then each question is searched as the public reader in every mode. A hit is a
retrieved chunk whose document is gold; ranks are over chunks, as the answer path sees them.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.base import Checkpoint, Document, PollItem
from workers.ingest.state import FileStateStore
from workers.ingest.sync import Syncer
from workers.rag.audience import Audience
from workers.rag.chunking import Chunker
from workers.rag.embed import Embedder
from workers.rag.index_edge import EdgeIndex
from workers.rag.retrieval_modes import MODES, Mode
from workers.rag.retrieve import Retriever
from workers.readers import public_only

PUBLIC_READER = Audience.of(public_only())

SOURCE = "eval"


class EvalInputError(ValueError):
    """A corpus or question file is missing or not in the documented JSONL format."""


def load_jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                row = json.loads(line)
                missing = [key for key in required if key not in row]
                if missing:
                    raise EvalInputError(f"{path}:{number}: missing {', '.join(missing)}")
                rows.append(row)
    except OSError as exc:
        raise EvalInputError(f"{path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise EvalInputError(f"{path}: not JSON Lines ({exc.msg} at line {exc.lineno})") from exc
    return rows


@dataclass
class CorpusConnector:
    """Serves a JSONL corpus as public documents, one per line."""

    rows: list[dict[str, Any]]
    name: str = SOURCE
    listing_is_cheap: bool = True

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        now = datetime.now(UTC)
        for row in self.rows:
            text = str(row["text"])
            yield Document(
                id=str(row["id"]),
                source=SOURCE,
                title=str(row.get("title") or row["id"]),
                url=str(row.get("url") or ""),
                text=text,
                updated_at=now,
                version=hashlib.sha256(text.encode()).hexdigest()[:16],
                acl=public_only(),
            )
        yield Checkpoint(SOURCE, "done")

    def list_ids(self) -> Iterator[str]:
        return (str(row["id"]) for row in self.rows)


def evaluate(
    corpus_path: Path,
    queries_path: Path,
    k: int,
    embedder: Embedder,
    chunker: Chunker,
    modes: Sequence[Mode] = MODES,
) -> dict[str, Any]:
    """Figures per mode; the top-level ones are the shipped mode's (hybrid) when it ran, else
    the one mode asked for."""
    corpus = load_jsonl(corpus_path, ("id", "text"))
    queries = load_jsonl(queries_path, ("id", "question", "gold"))
    if not corpus or not queries:
        raise EvalInputError("the corpus and the question set must not be empty")
    with tempfile.TemporaryDirectory(prefix="ragbot-eval-") as workdir:
        index = EdgeIndex(Path(workdir) / "index", embedder.dim)
        try:
            syncer = Syncer(index, embedder, chunker, FileStateStore(Path(workdir) / "state.json"))
            report = syncer.sync(CorpusConnector(corpus))
            retriever = Retriever(embedder, index)
            results: dict[str, Any] = {}
            for mode in modes:
                started = time.perf_counter()
                metrics = _score(retriever, queries, k, mode)
                metrics["ms_per_query"] = round(
                    1000 * (time.perf_counter() - started) / len(queries), 2
                )
                results[mode] = metrics
        finally:
            index.close()
    headline = results["hybrid"] if "hybrid" in results else results[modes[0]]
    return {
        "n": len(queries),
        **{key: headline[key] for key in ("hit@5", "hit@10", "mrr@10")},
        f"hit@{k}": headline[f"hit@{k}"],
        **results,
        "documents": len(corpus),
        "chunks": report.chunks_embedded,
        "index_seconds": round(report.seconds, 1),
        "embed_seconds": round(report.embed_seconds, 1),
        "embedder": embedder.name,
    }


def _score(
    retriever: Retriever, queries: list[dict[str, Any]], k: int, mode: Mode
) -> dict[str, Any]:
    depth = max(k, 10)
    hits_at = {5: 0, 10: 0, k: 0}
    reciprocal = 0.0
    for query in queries:
        gold = {str(g) for g in query["gold"]}
        found = retriever.search(str(query["question"]), PUBLIC_READER, depth, mode)
        ranks = [rank for rank, hit in enumerate(found.hits) if hit.document_id in gold]
        first = ranks[0] if ranks else None
        for cutoff in hits_at:
            hits_at[cutoff] += first is not None and first < cutoff
        if first is not None and first < 10:
            reciprocal += 1 / (first + 1)
    n = len(queries)
    scores: dict[str, Any] = {f"hit@{c}": round(v / n, 4) for c, v in sorted(hits_at.items())}
    scores["mrr@10"] = round(reciprocal / n, 4)
    return scores
