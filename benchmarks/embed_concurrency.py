"""A first sync against an embeddings server: how throughput follows the requests in flight.

Usage: python -m benchmarks.embed_concurrency [CORPUS_JSONL] [--documents N] [--batch-seconds S]
          (default corpus: ../shared/eval/conditionalqa/corpus.jsonl, 1,000 documents)

The server is a timed stand-in, stated as such: the fake OpenAI-compatible API in a process of
its own, taking `--batch-seconds` per embeddings request whatever its size (as a GPU server
does for batches that fit it), serving requests in parallel. The same folder is synced into a
fresh embedded index with `RAGBOT_EMBED_CONCURRENCY` 1, 2, 4 and 8 (batch size 32), the rounds
one after the other in one run; the figure is documents per second over the whole sync (listing,
splitting, sparse vectors and index writes included, so it cannot scale perfectly).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.fake_process import spawn_fake
from benchmarks.sync_throughput import write_folder
from workers.runtime import Runtime
from workers.settings import Settings

FAKE_SERVER = """
import sys
from tests.fakes.openai_api import FakeOpenAI
fake = FakeOpenAI(api_key="bench", embed_seconds=float(sys.argv[1])).start()
print(fake.base_url, flush=True)
sys.stdin.read()
"""
BATCH = 32


def sync_seconds(
    folder: Path, data_dir: Path, base_url: str, concurrency: int
) -> tuple[float, int]:
    settings = Settings(
        ragbot_data_dir=data_dir,
        files_path=folder,
        openai_api_key=None,
        ragbot_embed_url=base_url,
        ragbot_embed_api_key="bench",
        ragbot_embed_model="text-embedding-3-small",
        ragbot_embed_batch_size=BATCH,
        ragbot_embed_concurrency=concurrency,
    )
    with Runtime(settings) as runtime:
        started = time.perf_counter()
        report = runtime.syncer().sync(runtime.connector("files"))
        return time.perf_counter() - started, report.chunks_embedded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "corpus", nargs="?", type=Path, default=Path("../shared/eval/conditionalqa/corpus.jsonl")
    )
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--batch-seconds", type=float, default=0.5)
    options = parser.parse_args()
    server, (base_url,) = spawn_fake(FAKE_SERVER, str(options.batch_seconds))
    try:
        with tempfile.TemporaryDirectory(prefix="ragbot-embed-") as tmp:
            folder = Path(tmp) / "docs"
            folder.mkdir()
            documents = write_folder(options.corpus, folder, options.documents)
            print(
                f"{documents} documents; stand-in server: {options.batch_seconds:g} s per request "
                f"of up to {BATCH} passages"
            )
            first = None
            for concurrency in (1, 2, 4, 8):
                seconds, chunks = sync_seconds(
                    folder, Path(tmp) / f"data{concurrency}", base_url, concurrency
                )
                rate = documents / seconds
                first = first or rate
                print(
                    f"RAGBOT_EMBED_CONCURRENCY={concurrency}: {seconds:.1f} s, {rate:.1f} "
                    f"documents/s ({chunks} passages), {rate / first:.2f}× the first round "
                    f"({rate / first / concurrency:.2f} of linear)"
                )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
