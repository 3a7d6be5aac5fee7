"""Slack path benchmarks: ack latency under load, event -> answer latency, duplicate storm.

Usage: python -m benchmarks.slack_front_door [--rate 100] [--seconds 30] [--answers 100]
                                             [--storm 500] [--chunks 10000]

Runs `ragbot serve` and one `ragbot worker` as processes on real Redis (REDIS_URL, default
redis://127.0.0.1:6379/11, flushed before and after), with the fake Slack Web API and a fake LLM
that answers at once (from tests/fakes), over an index of the sample handbook plus synthetic
chunks. All traffic stays on loopback; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from benchmarks.front_door import QUESTIONS, build_index, start_front_door, start_worker
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import BOT_USER, TEAM, FakeSlack, sign

SECRET = "bench-secret"


def slack_env(
    fake_slack: FakeSlack, fake_llm: FakeOpenAI, data_dir: Path, redis_url: str
) -> dict[str, str]:
    """`ragbot serve` and its worker pointed at the fake Slack and LLM, on Redis."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        # Far more questions a minute than people ask: fair use is tested on its own.
        "RAGBOT_QUESTIONS_PER_MINUTE": "100000",
        "RAGBOT_CONVERSATION_QUESTIONS_PER_MINUTE": "100000",
        "SLACK_API_URL": fake_slack.api_url,
        "RAGBOT_DATA_DIR": str(data_dir),
        "RAGBOT_ORG_DOMAINS": "acme.com",
        "OPENAI_API_KEY": fake_llm.api_key,
        "OPENAI_BASE_URL": fake_llm.base_url,
    }


def event_body(channel: str, ts: str, text: str, event_id: str) -> str:
    return json.dumps(
        {
            "token": "unused",
            "team_id": TEAM,
            "api_app_id": "A0RAGBOT",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
            "event": {
                "type": "app_mention",
                "user": "U0ASKER",
                "text": f"<@{BOT_USER}> {text}",
                "ts": ts,
                "channel": channel,
                "event_ts": ts,
            },
        }
    )


async def post(client: httpx.AsyncClient, url: str, body: str) -> tuple[float, int]:
    headers = {"Content-Type": "application/json", **sign(SECRET, body)}
    started = time.perf_counter()
    response = await client.post(url, content=body, headers=headers)
    return time.perf_counter() - started, response.status_code


async def ack_load(
    url: str, rate: int, seconds: int, next_ts: Callable[[], str]
) -> dict[str, float]:
    """Signed mentions at `rate` per second for `seconds`; each message's ts from `next_ts`."""
    results: list[tuple[float, int]] = []
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200)) as client:
        tasks = []
        started = time.perf_counter()
        for i in range(rate * seconds):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body = event_body("C0LOAD", next_ts(), "How long is parental leave?", f"EvLoad{i}")
            tasks.append(asyncio.create_task(post(client, url, body)))
        results = await asyncio.gather(*tasks)
    ms = np.array([r[0] for r in results]) * 1000
    return {
        "requests": len(results),
        "errors": sum(1 for r in results if r[1] != 200),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def answered_at(fake: FakeSlack, channel: str) -> dict[str, float]:
    """Placeholder ts -> when chat.update replaced it (monotonic clock of this process)."""
    return dict(fake.update_times.get(channel, {}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--storm", type=int, default=500)
    parser.add_argument("--chunks", type=int, default=10_000)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")
    redis.Redis.from_url(redis_url).flushdb()
    fake_slack = TimedSlack(users={"U0ASKER": "sam@acme.com"}).start()
    fake_llm = FakeOpenAI().start()
    tmp = Path(tempfile.mkdtemp(prefix="ragbot-slack-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        data_dir = tmp / "data"
        build_index(data_dir, args.chunks)
        env = slack_env(fake_slack, fake_llm, data_dir, redis_url)
        log = (tmp / "processes.log").open("wb")
        server, port = start_front_door(env, log)
        processes.append(server)
        url = f"http://127.0.0.1:{port}/slack/events"

        # 1. Ack latency: no worker yet, the questions just queue up.
        load = asyncio.run(ack_load(url, args.rate, args.seconds, fake_slack.next_ts))
        print(
            f"ack latency at {args.rate} req/s for {args.seconds} s: p50 {load['p50_ms']:.1f} ms, "
            f"p99 {load['p99_ms']:.1f} ms, {load['errors']} errors of {load['requests']}"
        )
        redis.Redis.from_url(redis_url).flushdb()

        processes.append(start_worker(env, log))
        # Warm the worker (model and index load) with one question.
        asyncio.run(one_answer(url, fake_slack, "C0WARM", QUESTIONS[0], timeout=120))

        # 2. Event received -> answer posted, one question at a time.
        latencies = [
            asyncio.run(one_answer(url, fake_slack, "C0LAT", QUESTIONS[i % 4]))
            for i in range(args.answers)
        ]
        ms = np.array(latencies) * 1000
        print(
            f"event -> answer posted ({args.chunks} synthetic chunks + handbook, instant LLM): "
            f"p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms "
            f"over {args.answers} questions"
        )

        # 3. Duplicate storm: every event delivered three times (two of them as Slack retries).
        storm = asyncio.run(duplicate_storm(url, fake_slack, args.storm))
        print(
            f"duplicate storm: {args.storm} questions x 3 deliveries -> {storm['answers']} "
            f"answers, {storm['placeholders']} placeholders, {storm['errors']} HTTP errors"
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        fake_slack.stop()
        fake_llm.stop()
        redis.Redis.from_url(redis_url).flushdb()
        shutil.rmtree(tmp, ignore_errors=True)


class TimedSlack(FakeSlack):
    """The fake Slack, also noting when each placeholder was replaced."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.update_times: dict[str, dict[str, float]] = {}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        result = super()._chat_update(params)
        self.update_times.setdefault(params.get("channel", ""), {})[params.get("ts", "")] = (
            time.perf_counter()
        )
        return result


async def one_answer(
    url: str, fake: TimedSlack, channel: str, question: str, timeout: float = 30
) -> float:
    ts = fake.next_ts()
    async with httpx.AsyncClient(timeout=10) as client:
        started = time.perf_counter()
        await post(client, url, event_body(channel, ts, question, uuid.uuid4().hex))
        deadline = started + timeout
        while time.perf_counter() < deadline:
            for message in fake.bot_messages(channel):
                if message["thread_ts"] == ts and message.get("edited"):
                    return fake.update_times[channel][message["ts"]] - started
            await asyncio.sleep(0.005)
    raise TimeoutError(f"no answer for {ts}")


async def duplicate_storm(url: str, fake: TimedSlack, questions: int) -> dict[str, int]:
    channel = "C0STORM"
    errors = 0
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=50)) as client:
        for i in range(questions):
            body = event_body(channel, fake.next_ts(), QUESTIONS[i % 4], f"EvStorm{i}")
            statuses = await asyncio.gather(*(post(client, url, body) for _ in range(3)))
            errors += sum(1 for _, status in statuses if status != 200)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if sum(1 for m in fake.bot_messages(channel) if m.get("edited")) >= questions:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(5)  # anything extra would show up now
    messages = fake.bot_messages(channel)
    return {
        "answers": sum(1 for m in messages if m.get("edited")),
        "placeholders": len(messages),
        "errors": errors,
    }


if __name__ == "__main__":
    main()
