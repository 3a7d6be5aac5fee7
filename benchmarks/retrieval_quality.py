"""Retrieval quality of the default pipeline on the external question sets in shared/eval.

Usage: python -m benchmarks.retrieval_quality [EVAL_DIR]   (default: ../shared/eval)
Prints hit@5, hit@10 and MRR@10 for dense-only, sparse-only and hybrid retrieval per set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workers.evaluate import evaluate
from workers.rag.chunking import Chunker
from workers.rag.embed import LocalE5Embedder
from workers.rag.tokens import counter_for_model

SETS = ("conditionalqa", "allganize_ko", "mtrag_ibmcloud")


def main() -> None:
    eval_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/eval")
    embedder = LocalE5Embedder()
    chunker = Chunker(counter_for_model("gpt-4o-mini"))
    for name in SETS:
        result = evaluate(
            eval_dir / name / "corpus.jsonl",
            eval_dir / name / "queries.jsonl",
            10,
            embedder,
            chunker,
        )
        print(
            f"## {name}: {result['n']} questions, {result['documents']} documents, "
            f"{result['chunks']} chunks, indexed in {result['index_seconds']} s "
            f"({result['embed_seconds']} s embedding)"
        )
        for mode in ("dense", "sparse", "hybrid"):
            m = result[mode]
            print(
                f"{mode:<7} hit@5 {m['hit@5']:.3f}  hit@10 {m['hit@10']:.3f}  "
                f"mrr@10 {m['mrr@10']:.3f}  ({m['ms_per_query']} ms/query)"
            )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
