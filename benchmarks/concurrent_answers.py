"""Questions asked at once: how long until the last one is answered, and what the worker costs.

Usage: python -m benchmarks.concurrent_answers [--slow-model-seconds 2]

Runs `ragbot worker` on real Redis (REDIS_URL, default redis://127.0.0.1:6379/12, flushed
before, between rounds and after) over the sample handbook, with a fake OpenAI-compatible chat
model in its own process that takes `--slow-model-seconds` per answer. Each round hands 10 or
50 `ragbot.ask` tasks to the queue at once and waits for every answer. Side by side in one run:
the previous default (one task at a time, `--pool solo`) and today's default (threads).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from benchmarks.fake_process import spawn_fake
from benchmarks.front_door import QUESTIONS, RAGBOT, build_index, memory_mb
from workers import jobs
from workers.celery_app import make_celery
from workers.settings import Settings

FAKE_MODEL = """
import sys, time
from tests.fakes.openai_api import FakeOpenAI
fake = FakeOpenAI(reply_seconds=float(sys.argv[1])).start()
print(fake.base_url, flush=True)
sys.stdin.read()
"""


def round_trip(app: object, count: int) -> float:
    started = time.perf_counter()
    results = [
        app.send_task(jobs.ASK, args=[QUESTIONS[i % len(QUESTIONS)], None])  # type: ignore[attr-defined]
        for i in range(count)
    ]
    for result in results:
        answer = result.get(timeout=300)
        assert answer["sources"], answer
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-model-seconds", type=float, default=2.0)
    options = parser.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12")
    work = Path(tempfile.mkdtemp(prefix="ragbot-concurrency-"))
    model, (base_url,) = spawn_fake(FAKE_MODEL, str(options.slow_model_seconds))
    try:
        build_index(work / "data", 0)
        env = os.environ | {
            "REDIS_URL": url,
            "RAGBOT_DATA_DIR": str(work / "data"),
            "FILES_PATH": str(Path(__file__).resolve().parent.parent / "samples" / "handbook"),
            "RAGBOT_ORG_DOMAINS": "acme.com",
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": base_url,
        }
        app = make_celery(Settings(redis_url=url))
        print(f"fake chat model: {options.slow_model_seconds:g} s per answer")
        for label, pool, sizes in (
            ("one task at a time (--pool solo, the previous default)", ["--pool", "solo"], [10]),
            ("threads (today's default)", [], [10, 50]),
        ):
            redis.Redis.from_url(url).flushdb()
            log = (work / f"worker-{len(pool)}.log").open("wb")
            worker = subprocess.Popen(
                [RAGBOT, "worker", *pool, "--without-gossip", "--without-mingle"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 60
                while not app.control.ping(timeout=1) and time.monotonic() < deadline:
                    time.sleep(0.5)
                round_trip(app, 1)  # loads the model and opens the index
                for size in sizes:
                    seconds = round_trip(app, size)
                    print(f"{label}: {size} at once, last answer after {seconds:.1f} s")
                print(f"{label}: worker peak RSS {memory_mb(worker.pid)[1]:.0f} MB")
            finally:
                worker.terminate()
                worker.wait(30)
    finally:
        if model.stdin:
            model.stdin.close()
        model.wait(10)
        redis.Redis.from_url(url).flushdb()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
