"""Teams path benchmarks: activity POST -> HTTP response under load, activity -> answer latency.

Usage: python -m benchmarks.teams_front_door [--rate 50] [--seconds 30] [--answers 100]
                                             [--chunks 10000]

Runs `ragbot serve` (Bot Framework JWT checking on) and one `ragbot worker` as processes on real
Redis (REDIS_URL, default redis://127.0.0.1:6379/11, flushed before and after), with the fake
Bot Framework connector and a fake LLM that answers at once (from tests/fakes), over an index of
the sample handbook plus synthetic chunks. The HTTP response includes posting the "Searching…"
reply to the connector, as it does in production; the load generator and the fake connector
share this process. All traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from benchmarks.front_door import QUESTIONS, build_index, start_front_door, start_worker
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.teams_api import TENANT, FakeTeams, Member

APP_ID = "00000000-aaaa-4bbb-8ccc-0000000bench"
CHANNEL = "19:bench0000@thread.tacv2"
ASKER = Member("29:1sam", "aad-sam", "sam@acme.com", "Sam Park")


async def post(
    client: httpx.AsyncClient, url: str, fake: FakeTeams, activity: dict[str, Any]
) -> tuple[float, int]:
    headers = {"Authorization": f"Bearer {fake.sign()}"}
    started = time.perf_counter()
    response = await client.post(url, json=activity, headers=headers)
    return time.perf_counter() - started, response.status_code


async def response_load(url: str, rate: int, seconds: int, fake: FakeTeams) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200)) as client:
        tasks = []
        started = time.perf_counter()
        for i in range(rate * seconds):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            activity = fake.channel_post(QUESTIONS[i % 4], ASKER, CHANNEL, CHANNEL)
            tasks.append(asyncio.create_task(post(client, url, fake, activity)))
        results = await asyncio.gather(*tasks)
    ms = np.array([r[0] for r in results]) * 1000
    return {
        "requests": len(results),
        "errors": sum(1 for r in results if r[1] not in (200, 202)),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


async def one_answer(url: str, fake: FakeTeams, question: str, timeout: float = 30) -> float:
    activity = fake.channel_post(question, ASKER, CHANNEL, CHANNEL)
    thread = activity["conversation"]["id"]
    async with httpx.AsyncClient(timeout=10) as client:
        started = time.perf_counter()
        await post(client, url, fake, activity)
        while time.perf_counter() < started + timeout:
            for message in fake.bot_messages(thread):
                if message.get("edited_at"):
                    return float(message["edited_at"]) - started
            await asyncio.sleep(0.005)
    raise TimeoutError(f"no answer in {thread}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=10_000)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")
    redis.Redis.from_url(redis_url).flushdb()
    fake = FakeTeams(rosters={CHANNEL: [ASKER]}, app_id=APP_ID).start()
    fake_llm = FakeOpenAI().start()
    tmp = Path(tempfile.mkdtemp(prefix="ragbot-teams-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        data_dir = tmp / "data"
        build_index(data_dir, args.chunks)
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "MICROSOFT_APP_ID": APP_ID,
            # Far more questions a minute than people ask: fair use is tested on its own.
            "RAGBOT_QUESTIONS_PER_MINUTE": "100000",
            "RAGBOT_CONVERSATION_QUESTIONS_PER_MINUTE": "100000",
            "MICROSOFT_APP_PASSWORD": fake.app_password,
            "MICROSOFT_APP_TENANT_ID": TENANT,
            "MICROSOFT_OPENID_METADATA_URL": fake.metadata_url,
            "MICROSOFT_LOGIN_URL": fake.url,
            "RAGBOT_DATA_DIR": str(data_dir),
            "RAGBOT_ORG_DOMAINS": "acme.com",
            "OPENAI_API_KEY": fake_llm.api_key,
            "OPENAI_BASE_URL": fake_llm.base_url,
        }
        log = (tmp / "processes.log").open("wb")
        server, port = start_front_door(env, log)
        processes.append(server)
        url = f"http://127.0.0.1:{port}/api/messages"

        # 1. Response time under load: no worker yet, the questions just queue up. Ten requests
        # first warm the code paths a process runs once.
        asyncio.run(response_load(url, 10, 1, fake))
        load = asyncio.run(response_load(url, args.rate, args.seconds, fake))
        print(
            f"activity POST -> response at {args.rate} req/s for {args.seconds} s: "
            f"p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
            f"{load['errors']} errors of {load['requests']}"
        )
        redis.Redis.from_url(redis_url).flushdb()

        processes.append(start_worker(env, log))
        asyncio.run(one_answer(url, fake, QUESTIONS[0], timeout=120))  # model and index load

        # 2. Activity received -> answer posted (placeholder replaced), one at a time.
        latencies = [
            asyncio.run(one_answer(url, fake, QUESTIONS[i % 4])) for i in range(args.answers)
        ]
        ms = np.array(latencies) * 1000
        print(
            f"activity -> answer posted ({args.chunks} synthetic chunks + handbook, instant LLM): "
            f"p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms "
            f"over {args.answers} questions"
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        fake.stop()
        fake_llm.stop()
        redis.Redis.from_url(redis_url).flushdb()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
