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

import httpx
import numpy as np
import redis

from benchmarks.front_door import RAGBOT, free_port
from benchmarks.slack_front_door import SECRET, event_body, post

_ts = itertools.count(1)


def start(
    command: list[str], env: dict[str, str], port: int
) -> tuple[subprocess.Popen[bytes], float]:
    """Starts a server and returns it with the seconds it took to answer /healthz."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = started + 60
    while time.perf_counter() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            time.sleep(0.02)
    process.kill()
    raise TimeoutError(f"{command[0]} did not answer /healthz within 60 s")


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process, in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def load(url: str, rate: int, seconds: int) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200)) as client:
        tasks = []
        started = time.perf_counter()
        for i in range(rate * seconds):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ts = f"{int(time.time())}.{next(_ts):06d}"
            body = event_body("C0LOAD", ts, "How long is parental leave?", f"Ev{ts}")
            tasks.append(asyncio.create_task(post(client, url, body)))
        results = await asyncio.gather(*tasks)
    ms = np.array([r[0] for r in results]) * 1000
    return {
        "errors": sum(1 for r in results if r[1] != 200),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def fake_slack() -> tuple[subprocess.Popen[str], str, str]:
    """The fake Slack Web API in a process of its own; returns it, its API URL and token."""
    code = (
        "import sys\n"
        "from tests.fakes.slack_api import FakeSlack\n"
        "fake = FakeSlack(users={'U0ASKER': 'sam@acme.com'}).start()\n"
        "print(fake.api_url, fake.token, flush=True)\n"
        "sys.stdin.read()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    api_url, token = process.stdout.readline().split()
    return process, api_url, token


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
    slack, api_url, token = fake_slack()
    data_dir = Path(tempfile.mkdtemp(prefix="ragbot-footprint-"))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SLACK_BOT_TOKEN": token,
        "SLACK_SIGNING_SECRET": SECRET,
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
            asyncio.run(load(f"http://127.0.0.1:{port}/slack/events", args.rate, 1))
        for round_number in range(1, args.rounds + 1):
            for name, (process, port) in servers.items():
                store.flushdb()  # the queue drained: each round starts from the same state
                result = asyncio.run(
                    load(f"http://127.0.0.1:{port}/slack/events", args.rate, args.seconds)
                )
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
