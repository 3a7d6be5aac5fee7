"""The Slack front door's footprint beside a bare Bolt app: cold start, memory, ack latency.

Usage: python -m benchmarks.front_door_footprint [--rate 100] [--seconds 20] [--rounds 2]

Three kinds of process, each in its own: the fake Slack Web API, `ragbot serve` (on the machine's
Redis, REDIS_URL, default redis://127.0.0.1:6379/11, flushed before, between rounds and after;
no worker, so questions only queue up) and a bare Bolt app with a listener that does nothing
(`benchmarks/bare_bolt.py`, which imports nothing of ragbot). The same load generator
drives both, alternating rounds, so the machine's noise falls on both alike; each server gets
one unmeasured second of the same load first.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from benchmarks.fake_process import spawn_fake
from benchmarks.front_door import RAGBOT, free_port, memory_mb, wait_until_healthy
from benchmarks.slack_front_door import SECRET, ack_load

_ts = itertools.count(1)


def start(
    command: list[str], env: dict[str, str], port: int
) -> tuple[subprocess.Popen[bytes], float]:
    """Starts a server and returns it with the seconds it took to answer /healthz."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if not wait_until_healthy(port, 60, poll=0.02):
        process.kill()
        raise TimeoutError(f"{command[0]} did not answer /healthz within 60 s")
    return process, time.perf_counter() - started


FAKE_SLACK = """
import sys
from tests.fakes.slack_api import FakeSlack
fake = FakeSlack(users={'U0ASKER': 'sam@acme.com'}).start()
print(fake.api_url, fake.token, flush=True)
sys.stdin.read()
"""


def next_ts() -> str:
    return f"{int(time.time())}.{next(_ts):06d}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    slack, (api_url, token) = spawn_fake(FAKE_SLACK)
    data_dir = Path(tempfile.mkdtemp(prefix="ragbot-footprint-"))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SLACK_BOT_TOKEN": token,
        "SLACK_SIGNING_SECRET": SECRET,
        # Far more questions a minute than people ask: fair use is tested on its own.
        "RAGBOT_QUESTIONS_PER_MINUTE": "100000",
        "RAGBOT_CONVERSATION_QUESTIONS_PER_MINUTE": "100000",
        "SLACK_API_URL": api_url,
        "RAGBOT_DATA_DIR": str(data_dir),
        "RAGBOT_ORG_DOMAINS": "acme.com",
    }
    commands = {
        "ragbot": lambda port: [RAGBOT, "serve", "--port", str(port)],
        "bare Bolt": lambda port: [sys.executable, "-m", "benchmarks.bare_bolt", str(port)],
    }
    try:
        for name, command in commands.items():
            times, memories = [], []
            for _ in range(args.starts):
                port = free_port()
                process, seconds = start(command(port), env, port)
                times.append(seconds)
                memories.append(memory_mb(process.pid)[0])
                process.terminate()
                process.wait(15)
            print(
                f"{name}: cold start to /healthz median {statistics.median(times):.2f} s "
                f"(min {min(times):.2f}, max {max(times):.2f}); "
                f"resident after start {statistics.median(memories):.0f} MB"
            )
        servers = {}
        for name, command in commands.items():
            port = free_port()
            servers[name] = (start(command(port), env, port)[0], port)
        for _, port in servers.values():  # one unmeasured second each: lazy imports, pools
            asyncio.run(ack_load(f"http://127.0.0.1:{port}/slack/events", args.rate, 1, next_ts))
        for round_number in range(1, args.rounds + 1):
            for name, (process, port) in servers.items():
                store.flushdb()  # the queue drained: each round starts from the same state
                url = f"http://127.0.0.1:{port}/slack/events"
                result = asyncio.run(ack_load(url, args.rate, args.seconds, next_ts))
                rss, peak = memory_mb(process.pid)
                print(
                    f"round {round_number} {name}: ack at {args.rate} req/s for "
                    f"{args.seconds} s p50 {result['p50_ms']:.1f} ms, p99 "
                    f"{result['p99_ms']:.1f} ms, {result['errors']} errors; resident "
                    f"{rss:.0f} MB (peak {peak:.0f} MB)"
                )
        for process, _ in servers.values():
            process.terminate()
            process.wait(15)
    finally:
        slack.terminate()
        store.flushdb()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
