"""Indexing throughput with the default embedder, and the cost of re-syncing an unchanged folder.

Usage: python -m benchmarks.sync_throughput [CORPUS_JSONL] [--documents N]
          (default corpus: ../shared/eval/conditionalqa/corpus.jsonl, 1,000 documents)

Writes N passages as Markdown files into a temporary folder, syncs it into a fresh embedded
index, then syncs again without changes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from connectors.files import FilesConnector
from workers.ingest.state import FileStateStore
from workers.ingest.sync import Syncer
from workers.rag.chunking import Chunker
from workers.rag.embed import LocalE5Embedder
from workers.rag.index_edge import EdgeIndex
from workers.rag.tokens import counter_for_model


def write_folder(corpus: Path, folder: Path, documents: int) -> int:
    written = 0
    with corpus.open(encoding="utf-8") as handle:
        for line in handle:
            if written == documents:
                break
            row = json.loads(line)
            (folder / f"{written:05d}.md").write_text(
                f"# {row['title']}\n\n{row['text']}\n", encoding="utf-8"
            )
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?", default="../shared/eval/conditionalqa/corpus.jsonl")
    parser.add_argument("--documents", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ragbot-sync-bench-") as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        count = write_folder(Path(args.corpus), folder, args.documents)
        embedder = LocalE5Embedder()
        index = EdgeIndex(Path(tmp) / "index", embedder.dim)
        syncer = Syncer(
            index,
            embedder,
            Chunker(counter_for_model("gpt-4o-mini")),
            FileStateStore(Path(tmp) / "state.json"),
        )
        first = syncer.sync(FilesConnector(folder))
        overhead = first.seconds - first.embed_seconds
        embed_share = 100 * first.embed_seconds / first.seconds
        print(
            f"first sync: {count} documents, {first.chunks_embedded} chunks in "
            f"{first.seconds:.1f} s = {first.chunks_embedded / first.seconds:.1f} chunks/s; "
            f"embedding {first.embed_seconds:.1f} s ({embed_share:.1f}%), "
            f"parse + chunk + write {overhead:.1f} s ({100 - embed_share:.1f}%)"
        )
        # Past the files connector's timestamp slack, as a scheduled re-sync would be.
        time.sleep(6)
        again = syncer.sync(FilesConnector(folder))
        print(
            f"re-sync unchanged: {again.chunks_embedded} chunks embedded, {again.indexed} "
            f"documents rewritten, {again.seconds:.2f} s "
            f"({100 * again.seconds / first.seconds:.2f}% of the first sync)"
        )
        index.close()


if __name__ == "__main__":
    main()
