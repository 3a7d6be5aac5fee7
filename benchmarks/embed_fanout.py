"""A first sync fanned out over embedding worker processes: scaling, and a worker killed mid-sync.

Usage: python -m benchmarks.embed_fanout [CORPUS_JSONL] [--documents N] [--batch-seconds S]
          [--workers 1,2,4,8] [--local-documents N] [--skip-local] [--skip-crash]
          (defaults: ../shared/eval/conditionalqa/corpus.jsonl, 4,000 documents going round
          the corpus, 2 s per batch, 300 documents for the local model)

Every round syncs the same folder into a fresh embedded index; the sync runs in this process
(the index's one writer) and hands batches of 64 passages to `ragbot worker -Q embed`
processes over real Redis (REDIS_URL's server, database 14, flushed between rounds). Workers
are started and answering before a round's clock starts.

1. Scaling with a timed stand-in, stated as such: each worker embeds through the fake
   OpenAI-compatible server (a process of its own), which takes `--batch-seconds` per request
   whatever its size, so a worker's batch costs a fixed time as it would on a CPU of its own.
   Throughput with 1, 2, 4 and 8 workers, against N times one worker's.
2. The real local model (multilingual-e5-small on this machine's 2 cores): 1 vs 2 processes.
3. kill -9 of one of two stand-in workers mid-sync: documents lost and duplicated, counted in
   the index against the folder.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from benchmarks.fake_process import spawn_fake
from benchmarks.front_door import RAGBOT
from benchmarks.sync_throughput import write_folder
from workers.celery_app import make_celery
from workers.ingest.sync import SyncReport
from workers.runtime import Runtime
from workers.settings import Settings

FAKE_SERVER = """
import sys
from tests.fakes.openai_api import FakeOpenAI
fake = FakeOpenAI(api_key="bench", embed_seconds=float(sys.argv[1])).start()
print(fake.base_url, flush=True)
sys.stdin.read()
"""
STAND_IN_MODEL = "stand-in-embedder"  # 64 dimensions at the fake server
VISIBILITY_SECONDS = 10


def write_copies(corpus: Path, folder: Path, documents: int) -> int:
    """`documents` files from the corpus, going round it again (in new folders) when short."""
    written, copy = 0, 0
    while written < documents:
        target = folder / f"copy{copy}"
        target.mkdir()
        added = write_folder(corpus, target, documents - written)
        if added == 0:
            raise ValueError(f"{corpus} holds no documents")
        written, copy = written + added, copy + 1
    return written


def redis_url() -> str:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
    return base.rsplit("/", 1)[0] + "/14"


def settings_for(data_dir: Path, folder: Path, base_url: str | None) -> Settings:
    remote = {
        "ragbot_embed_url": base_url,
        "ragbot_embed_api_key": "bench",
        "ragbot_embed_model": STAND_IN_MODEL,
        "ragbot_embed_batch_size": 64,  # one request per batch
        "ragbot_embed_concurrency": 1,
    }
    return Settings(
        redis_url=redis_url(),
        ragbot_data_dir=data_dir,
        files_path=folder,
        openai_api_key=None,
        ragbot_embed_fanout=True,
        ragbot_embed_batches_in_flight=16,
        ragbot_task_visibility_seconds=VISIBILITY_SECONDS,
        **(remote if base_url else {}),
    )


def worker_env(settings: Settings) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "REDIS_URL": str(settings.redis_url),
        "RAGBOT_DATA_DIR": str(settings.ragbot_data_dir),
        "RAGBOT_EMBED_FANOUT": "true",
        "RAGBOT_TASK_VISIBILITY_SECONDS": str(VISIBILITY_SECONDS),
    }
    if settings.ragbot_embed_url:
        env |= {
            "RAGBOT_EMBED_URL": settings.ragbot_embed_url,
            "RAGBOT_EMBED_API_KEY": "bench",
            "RAGBOT_EMBED_MODEL": STAND_IN_MODEL,
            "RAGBOT_EMBED_BATCH_SIZE": "64",
            "RAGBOT_EMBED_CONCURRENCY": "1",
        }
    return env


@contextmanager
def embedding_workers(
    settings: Settings, count: int, logs: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` embedding workers, answering pings before this yields; stopped afterwards."""
    redis.Redis.from_url(str(settings.redis_url)).flushdb()
    workers = []
    for n in range(count):
        log = (logs / f"worker-{count}-{n}-{time.monotonic_ns()}.log").open("wb")
        workers.append(
            subprocess.Popen(
                [RAGBOT, "worker", "-Q", "embed", "--without-gossip", "--without-mingle"],
                env=worker_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    app = make_celery(settings)
    deadline = time.monotonic() + 120
    while len(app.control.ping(timeout=1)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("embedding workers did not start")
    try:
        yield workers
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()


def one_sync(settings: Settings) -> tuple[SyncReport, float, dict[str, int]]:
    """The sync's report, its wall-clock seconds, and each document's passage count."""
    with Runtime(settings) as runtime:
        _ = runtime.index  # opened before the clock starts
        started = time.perf_counter()
        report = runtime.syncer().sync(runtime.connector("files"))
        seconds = time.perf_counter() - started
        index = runtime.index
        counts = {d: len(index.document_texts(d)) for d in index.document_versions("files")}
    return report, seconds, counts


def scaling(folder: Path, tmp: Path, base_url: str | None, counts: list[int]) -> None:
    """One round per worker count (`base_url` None: the real local model)."""
    kind = "stand-in" if base_url else "local-model"
    print(f"\n| {kind} workers | chunks | seconds | chunks/s | × one worker | of linear |")
    print("|---:|---:|---:|---:|---:|---:|")
    first = None
    for count in counts:
        settings = settings_for(tmp / f"{kind}-{count}", folder, base_url)
        with embedding_workers(settings, count, tmp):
            report, seconds, _ = one_sync(settings)
        rate = report.chunks_embedded / seconds
        first = first or rate
        print(
            f"| {count} | {report.chunks_embedded} | {seconds:.1f} | {rate:.2f} | "
            f"{rate / first:.2f} | {rate / first / count:.2f} |",
            flush=True,
        )


def crash(folder: Path, tmp: Path, base_url: str, documents: int, batch_seconds: float) -> None:
    settings = settings_for(tmp / "crash", folder, base_url)
    calm_settings = settings_for(tmp / "calm", folder, base_url)
    with embedding_workers(calm_settings, 2, tmp):
        _, _, calm = one_sync(calm_settings)
    killed_at: list[float] = []
    with embedding_workers(settings, 2, tmp) as workers:
        victim = workers[0]
        started = time.perf_counter()

        def kill_mid_batch() -> None:
            # Halfway through the victim's second batch (16 batches are out for two workers:
            # each always holds one).
            time.sleep(batch_seconds * 1.5)
            victim.send_signal(signal.SIGKILL)
            killed_at.append(time.perf_counter() - started)

        killer = threading.Thread(target=kill_mid_batch)
        killer.start()
        report, seconds, counts = one_sync(settings)
        killer.join()
    lost = len(set(calm) - set(counts))
    duplicated = sum(max(counts[d] - calm[d], 0) for d in counts if d in calm)
    missing_passages = sum(max(calm[d] - counts.get(d, 0), 0) for d in calm)
    print(
        f"\nkill -9 of 1 of 2 workers {killed_at[0]:.1f} s into a {seconds:.1f} s sync: "
        f"{report.indexed} of {documents} documents indexed; documents lost {lost}, passages "
        f"missing {missing_passages}, passages duplicated {duplicated} (against an undisturbed "
        "sync of the same folder)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "corpus", nargs="?", type=Path, default=Path("../shared/eval/conditionalqa/corpus.jsonl")
    )
    parser.add_argument("--documents", type=int, default=4000)
    parser.add_argument("--batch-seconds", type=float, default=2.0)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--local-documents", type=int, default=300)
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-crash", action="store_true")
    options = parser.parse_args()
    server, (base_url,) = spawn_fake(FAKE_SERVER, str(options.batch_seconds))
    try:
        with tempfile.TemporaryDirectory(prefix="ragbot-fanout-") as tmp_name:
            tmp = Path(tmp_name)
            folder = tmp / "docs"
            folder.mkdir()
            documents = write_copies(options.corpus, folder, options.documents)
            print(
                f"{documents} documents; stand-in: {options.batch_seconds:g} s per batch of up to "
                "64 passages; sync and index in this process, workers over Redis"
            )
            scaling(folder, tmp, base_url, [int(n) for n in options.workers.split(",")])
            if not options.skip_crash:
                crash(folder, tmp, base_url, documents, options.batch_seconds)
            if not options.skip_local:
                small = tmp / "small"
                small.mkdir()
                write_copies(options.corpus, small, options.local_documents)
                scaling(small, tmp, None, [1, 2])
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)


if __name__ == "__main__":
    main()
