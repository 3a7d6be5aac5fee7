"""The question sets chunked and embedded once, cached on disk, for retrieval studies.

Usage: python -m benchmarks.eval_cache [EVAL_DIR]   (default: ../shared/eval)

Each set's corpus goes through the production chunker; every chunk's embedding text and every
question are embedded with the local model and kept in `.ragbot-cache/eval/<set>.npz` (keyed by
the texts, so a chunker change re-embeds only what changed). Embedding the sets takes about
40 minutes on 2 cores the first time, seconds after.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.evaluate import CorpusConnector, load_jsonl
from workers.rag.chunking import Chunk, Chunker
from workers.rag.embed import LocalE5Embedder
from workers.rag.tokens import counter_for_model

CACHE = Path(".ragbot-cache/eval")
SETS = ("conditionalqa", "allganize_ko", "mtrag_ibmcloud")


@dataclass
class EmbeddedSet:
    name: str
    chunks: list[Chunk]
    chunk_vectors: np.ndarray
    questions: list[str]
    golds: list[set[str]]
    question_vectors: np.ndarray


class LocalModelStandIn:
    """What the answer path reads of the local model besides its vectors (name, size,
    thresholds), for stand-ins that give vectors without running it."""

    name = LocalE5Embedder.name
    dim = LocalE5Embedder.dim
    close_similarity = LocalE5Embedder.close_similarity
    floor_similarity = LocalE5Embedder.floor_similarity
    same_question_similarity = LocalE5Embedder.same_question_similarity


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load(eval_dir: Path, name: str, embedder: LocalE5Embedder | None = None) -> EmbeddedSet:
    corpus = load_jsonl(eval_dir / name / "corpus.jsonl", ("id", "text"))
    queries = load_jsonl(eval_dir / name / "queries.jsonl", ("id", "question", "gold"))
    chunker = Chunker(counter_for_model("gpt-4o-mini"))
    documents = [item for item in CorpusConnector(corpus).poll(None) if hasattr(item, "text")]
    chunks = [chunk for document in documents for chunk in chunker.chunk(document)]  # type: ignore[arg-type]
    path = CACHE / f"{name}.npz"
    cached: dict[str, np.ndarray] = {}
    if path.exists():
        stored = np.load(path)
        cached = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    embedder = embedder or LocalE5Embedder()

    def vectors(texts: list[str], query: bool) -> np.ndarray:
        keys = [("q:" if query else "p:") + _key(t) for t in texts]
        missing = [t for t, k in zip(texts, keys, strict=True) if k not in cached]
        started = time.perf_counter()
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            embedded = (
                np.vstack([embedder.embed_query(t) for t in batch])
                if query
                else embedder.embed_passages(batch)
            )
            for text, vector in zip(batch, embedded, strict=True):
                cached[("q:" if query else "p:") + _key(text)] = vector
            print(
                f"{name}: {start + len(batch)}/{len(missing)} embedded "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
            _save(path, cached)
        return np.vstack([cached[k] for k in keys])

    questions = [str(q["question"]) for q in queries]
    return EmbeddedSet(
        name=name,
        chunks=chunks,
        chunk_vectors=vectors([c.embed_text for c in chunks], query=False),
        questions=questions,
        golds=[{str(g) for g in q["gold"]} for q in queries],
        question_vectors=vectors(questions, query=True),
    )


def _save(path: Path, cached: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(cached)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, keys=np.array(keys), vectors=np.vstack([cached[k] for k in keys]))
    temporary.replace(path)


def main() -> None:
    eval_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/eval")
    embedder = LocalE5Embedder()
    for name in SETS:
        embedded = load(eval_dir, name, embedder)
        print(f"{name}: {len(embedded.chunks)} chunks, {len(embedded.questions)} questions cached")


if __name__ == "__main__":
    main()
