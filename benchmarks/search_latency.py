"""Search latency and `ragbot ask` peak memory with 100k chunks in the embedded index.

Usage: python -m benchmarks.search_latency [--chunks N] [--queries Q] [--audiences-only]
                                            [--curation-only] [--rerank-only]

Searches run as one reader (a DM, or the company-wide reader) and as channel audiences of 5, 50
and 100 members (every member a distinct set of principals: the filter's worst case), in the
same run and on the same index, so the figures compare side by side. `--curation-only` compares
searches without curation and with a channel scope (3 of 40 spaces), 50 hidden and 200 boosted
or buried documents, query by query. `--rerank-only` compares searches without and with the
reranking stage, against a reranking server that answers at once (a fake in its own process):
what the stage costs on our side, before the model's own time.

The chunks are synthetic (random unit vectors, sparse vectors of random words, realistic
payloads and a mix of ACLs), so the figures measure the engine and our query path, not a
model. Query embedding with the default local model is timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.eval_cache import LocalModelStandIn
from benchmarks.fake_process import spawn_fake
from connectors.base import Document
from workers.rag.audience import Audience
from workers.rag.chunking import Chunk
from workers.rag.curation import UNCURATED, Curation
from workers.rag.embed import LocalE5Embedder
from workers.rag.index_edge import EdgeIndex
from workers.rag.rerank import RemoteReranker
from workers.rag.retrieve import Retriever
from workers.rag.sparse import document_vector
from workers.readers import org_wide

CHUNKS_PER_DOCUMENT = 10
SPACES = 40  # each synthetic page lives in one of these (its place for channel scopes)
ACLS = [
    (0.70, frozenset({"domain:acme.com"})),
    (0.20, frozenset({"public"})),
    (0.05, frozenset({"group:confluence:hr", "user:dana@acme.com"})),
    (0.05, frozenset({"user:sam@acme.com"})),
]


def build(path: Path, chunks: int, seed: int = 7) -> float:
    rng = np.random.default_rng(seed)
    vocabulary = [f"term{i}" for i in range(20_000)] + ["휴가", "신청", "배포", "승인"]
    index = EdgeIndex(path, LocalE5Embedder.dim)
    started = time.perf_counter()
    weights = np.array([w for w, _ in ACLS])
    for d in range(chunks // CHUNKS_PER_DOCUMENT):
        acl = ACLS[int(rng.choice(len(ACLS), p=weights))][1]
        doc = Document(
            id=f"bench:{d}",
            source="confluence",
            title=f"Page {d}",
            url=f"https://wiki/{d}",
            text="",
            updated_at=datetime(2026, 11, 1, tzinfo=UTC),
            version="1",
            acl=acl,
            places=(f"SPACE{d % SPACES}",),
        )
        texts = [" ".join(rng.choice(vocabulary, 80)) for _ in range(CHUNKS_PER_DOCUMENT)]
        batch = [
            Chunk(f"{doc.id}#{i}", doc.id, i, ("Section",), text, f"Page {d} › Section")
            for i, text in enumerate(texts)
        ]
        dense = rng.normal(size=(CHUNKS_PER_DOCUMENT, LocalE5Embedder.dim)).astype(np.float32)
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        index.replace_document(doc, batch, dense, [document_vector(t) for t in texts])
    index.commit()
    index.close()
    return time.perf_counter() - started


GROUPS = [f"group:confluence:team{i}" for i in range(20)]


def channel_audience(members: int, seed: int = 3) -> Audience:
    """A channel's members: each their own email, two of twenty groups, half of them in HR."""
    rng = np.random.default_rng(seed)
    readers = []
    for i in range(members):
        groups = {str(g) for g in rng.choice(GROUPS, 2, replace=False)}
        hr = {"group:confluence:hr"} if i % 2 == 0 else set()
        readers.append({"public", "domain:acme.com", f"user:member{i}@acme.com", *groups, *hr})
    return Audience.everyone_of(readers)


def random_query(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """Five vocabulary words and a random unit vector: a question the index has no answer
    for, so every search does the full work."""
    vector = rng.normal(size=LocalE5Embedder.dim).astype(np.float32)
    vector /= np.linalg.norm(vector)
    return " ".join(f"term{i}" for i in rng.integers(0, 20_000, 5)), vector


class DrawnVectors(LocalModelStandIn):
    """Query vectors drawn at random beforehand: the search is timed, not a model."""

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def embed_query(self, text: str) -> np.ndarray:
        return self.vectors.pop(text)

    def embed_passages(self, texts: object) -> np.ndarray:
        raise NotImplementedError("searches only")


def admins_curation(chunks: int, seed: int = 5) -> Curation:
    """A busy channel's choices: three spaces, and company-wide preferences on 250 pages."""
    rng = np.random.default_rng(seed)
    pages = [f"https://wiki/{d}" for d in rng.permutation(chunks // CHUNKS_PER_DOCUMENT)[:250]]
    return Curation(
        places=frozenset({"confluence:SPACE1", "confluence:SPACE2", "confluence:SPACE3"}),
        boosted=frozenset(pages[:100]),
        buried=frozenset(pages[100:200]),
        hidden=frozenset(pages[200:]),
    )


def measure(
    path: Path,
    queries: int,
    audience: Audience,
    seed: int = 11,
    curation: Curation = UNCURATED,
    reranker: RemoteReranker | None = None,
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    index = EdgeIndex(path, LocalE5Embedder.dim)

    reopen = time.perf_counter()
    index.search_dense(np.ones(LocalE5Embedder.dim, np.float32) / 20, audience, 1)  # warm-up
    warm_seconds = time.perf_counter() - reopen
    timings = []
    embedder = DrawnVectors()
    # The answer path's search, embedding aside.
    retriever = Retriever(embedder, index, reranker=reranker)
    for _ in range(queries):
        question, vector = random_query(rng)
        embedder.vectors[question] = vector
        started = time.perf_counter()
        fused = retriever.search(question, audience, 10, curation=curation).hits
        timings.append(time.perf_counter() - started)
        assert len(fused) == 10
        assert all(h.document_id.startswith("bench:") for h in fused)
        assert not curation.places or all(
            int(h.document_id[6:]) % SPACES in (1, 2, 3) for h in fused
        )
        assert all(h.url not in curation.hidden for h in fused)
    index.close()
    ms = np.array(timings) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "first_search_after_open_s": warm_seconds,
    }


# A reranking server that answers at once: shorter passages first, so the order changes.
INSTANT_RERANKER = """
import sys
from tests.fakes.rerank_api import FakeReranker
fake = FakeReranker(scorer=lambda query, text: -len(text)).start()
print(fake.url, fake.api_key, flush=True)
sys.stdin.read()
fake.stop()
"""


def compare_reranking(path: Path, queries: int) -> None:
    """Searches without and with the reranking stage, interleaved, as the company-wide reader."""
    server, (url, key) = spawn_fake(INSTANT_RERANKER)
    reranker = RemoteReranker(url, "bench", key)
    audience = Audience.of(org_wide(["acme.com"]))
    try:
        for _ in range(2):
            for label, stage in (("without", None), ("with", reranker)):
                search = measure(path, queries, audience, reranker=stage)
                print(
                    f"hybrid + ACL search (no embedding), {label} reranking: "
                    f"p50 {search['p50_ms']:.2f} ms, p99 {search['p99_ms']:.2f} ms"
                )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)


def query_embedding_ms(samples: int = 30) -> dict[str, float]:
    model = LocalE5Embedder()
    questions = [
        "How many days of annual leave do I get?",
        "연차 이월 한도는 며칠인가요?",
        "How do I roll back a production deploy?",
    ]
    timings = []
    for i in range(samples):
        started = time.perf_counter()
        model.embed_query(questions[i % len(questions)])
        timings.append(time.perf_counter() - started)
    ms = np.array(timings) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


# The child reports its own high-water mark: getrusage(RUSAGE_CHILDREN) would also count the
# pages it shared with this (large) process between fork and exec.
_REPORT_PEAK = (
    "import atexit, sys\n"
    "def report():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            print('PEAK_KB', line.split()[1], file=sys.stderr)\n"
    "atexit.register(report)\n"
    "from bot.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def ask_peak_memory(data_dir: Path) -> dict[str, object]:
    env = {**os.environ, "RAGBOT_DATA_DIR": str(data_dir), "RAGBOT_ORG_DOMAINS": "acme.com"}
    for name in ("REDIS_URL", "QDRANT_URL", "OPENAI_API_KEY"):
        env.pop(name, None)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _REPORT_PEAK, "ask", "term1 term2 휴가", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    peak_kib = int(result.stderr.split("PEAK_KB")[1].split()[0])
    return {
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "wall_s": round(seconds, 2),
        "abstained": json.loads(result.stdout)["abstained"],
    }


def compare_curation(path: Path, queries: int, curation: Curation, seed: int = 11) -> None:
    """Each query without and then with the scope and the preferences, alternately, so the
    machine's drift falls on both alike; for two audiences, twice."""
    audiences = {
        "one reader (company-wide)": Audience.of(org_wide(["acme.com"])),
        "channel of 50 members": channel_audience(50),
    }
    rounds = {"no curation": UNCURATED, "scope + hide + boost/bury": curation}
    index = EdgeIndex(path, LocalE5Embedder.dim)
    embedder = DrawnVectors()
    retriever = Retriever(embedder, index)
    for run in (1, 2):
        for audience_name, audience in audiences.items():
            rng = np.random.default_rng(seed + run)
            timings: dict[str, list[float]] = {name: [] for name in rounds}
            for _ in range(queries):
                question, vector = random_query(rng)
                for name, chosen in rounds.items():
                    embedder.vectors[question] = vector
                    started = time.perf_counter()
                    retriever.search(question, audience, 10, curation=chosen)
                    timings[name].append(time.perf_counter() - started)
            for name, seconds in timings.items():
                ms = np.array(seconds) * 1000
                print(
                    f"run {run}, hybrid search, {audience_name}, {name}: "
                    f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms"
                )
    index.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--data-dir", type=Path, help="keep (or reuse) the built index here")
    parser.add_argument(
        "--audiences-only", action="store_true", help="skip query embedding and peak memory"
    )
    parser.add_argument(
        "--curation-only",
        action="store_true",
        help="only compare searches with and without curation",
    )
    parser.add_argument(
        "--rerank-only",
        action="store_true",
        help="only compare searches without and with the reranking stage",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ragbot-bench-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        path = data_dir / "index" / LocalE5Embedder.name
        if not path.exists():
            build_seconds = build(path, args.chunks)
            print(f"built {args.chunks} chunks in {build_seconds:.1f} s")
        if args.curation_only:
            compare_curation(path, args.queries, admins_curation(args.chunks))
            return
        if args.rerank_only:
            compare_reranking(path, args.queries)
            return
        audiences = {
            "one reader (company-wide)": Audience.of(org_wide(["acme.com"])),
            "channel of 5 members": channel_audience(5),
            "channel of 50 members": channel_audience(50),
            "channel of 100 members": channel_audience(100),
        }
        for _ in range(2):  # twice, interleaved: a noisy machine shows as a difference
            for name, audience in audiences.items():
                search = measure(path, args.queries, audience)
                print(
                    f"hybrid + ACL search (no embedding), {name}: p50 {search['p50_ms']:.2f} ms, "
                    f"p99 {search['p99_ms']:.2f} ms; first search after open "
                    f"{search['first_search_after_open_s']:.2f} s"
                )
        if args.audiences_only:
            return
        embedding = query_embedding_ms()
        print(
            f"query embedding (local model): p50 {embedding['p50_ms']:.1f} ms, "
            f"p99 {embedding['p99_ms']:.1f} ms"
        )
        memory = ask_peak_memory(data_dir)
        print(
            f"`ragbot ask` with {args.chunks} chunks: peak RSS {memory['peak_rss_mb']} MB, "
            f"{memory['wall_s']} s wall"
        )


if __name__ == "__main__":
    main()
