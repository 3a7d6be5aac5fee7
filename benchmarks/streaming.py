"""Streamed answers: time to the first visible answer text (Slack threads, Teams personal chats),
and streaming calls per answer.

Usage: python -m benchmarks.streaming [--questions N] [--long 3]

Runs `ragbot serve` and one `ragbot worker` as processes on real Redis (REDIS_URL, default
redis://127.0.0.1:6379/11, flushed before and after), the fake Slack Web API and a fake LLM
whose first token comes after 300 ms and the rest at 20 tokens a second (both fakes in this
process, on loopback), over the sample handbook. Time to first text: the signed event (or Bot
Framework activity) is posted -> the fake Slack receives `chat.startStream` with the first text
(the fake Teams its first `streaming` update). Questions are asked one at a time, each after the
previous answer is final.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import redis

from benchmarks.front_door import QUESTIONS, build_index, start_front_door, start_worker
from benchmarks.slack_front_door import SECRET, event_body, slack_env
from tests.fakes.openai_api import FakeOpenAI, Messages, cite_first_source
from tests.fakes.slack_api import FakeSlack, sign
from tests.fakes.teams_api import TENANT, FakeTeams, Member

APP_ID = "00000000-aaaa-4bbb-8ccc-0000000stream"
ASKER = Member("29:1sam", "aad-sam", "sam@acme.com", "Sam Park")

TOKENS_PER_SECOND = 20
FIRST_TOKEN_SECONDS = 0.3


def reply_of(tokens: int) -> Callable[[Messages], str]:
    """A cited reply of about `tokens` tokens (the fake streams four characters a token)."""

    def respond(messages: Messages) -> str:
        first = cite_first_source(messages)
        padding = max(0, tokens * 4 - len(first))
        words = ("and the policy says so [1] " * (padding // 27 + 1))[:padding]
        return f"{first} {words}".strip()

    return respond


def ask(url: str, fake: FakeSlack, channel: str, question: str) -> tuple[float, str]:
    """(seconds from the event to the first streamed text, the thread)."""
    ts = fake.next_ts()
    body = event_body(channel, ts, question, f"Ev{uuid.uuid4().hex[:12]}")
    headers = {"Content-Type": "application/json", **sign(SECRET, body)}
    posted = time.time()
    httpx.post(url, content=body, headers=headers, timeout=10).raise_for_status()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = [
            when
            for (method, params), (_, when) in zip(fake.calls, fake.call_times, strict=False)
            if method == "chat.startStream" and params.get("thread_ts") == ts
        ]
        final = [
            m
            for m in fake.messages.get(channel, [])
            if m.get("thread_ts") == ts and m.get("edited") and not m.get("streaming")
        ]
        if started and final:
            return started[0] - posted, ts
        time.sleep(0.01)
    raise TimeoutError(f"no streamed answer in {channel}/{ts}")


def ask_teams(url: str, fake: FakeTeams, question: str) -> float:
    """Seconds from the activity posted to the first streamed text in the personal chat."""
    activity = fake.personal_message(question, ASKER)
    conversation = activity["conversation"]["id"]
    posted = time.time()
    headers = {"Authorization": f"Bearer {fake.sign()}"}
    httpx.post(url, json=activity, headers=headers, timeout=10).raise_for_status()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        streams = [
            m
            for m in fake.bot_messages(conversation)
            if m.get("replyToId") == activity["id"] and "streaming" in m
        ]
        if streams and streams[0]["streaming"] is False:
            first = next(
                when
                for stream_id, kind, when in fake.stream_updates
                if stream_id == streams[0]["id"] and kind == "streaming"
            )
            return first - posted
        time.sleep(0.01)
    raise TimeoutError(f"no streamed answer in {conversation}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--long", type=int, default=3, help="300-token answers to count calls on")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")
    redis.Redis.from_url(redis_url).flushdb()
    fake_slack = FakeSlack(users={"U0ASKER": "sam@acme.com"}).start()
    fake_teams = FakeTeams(rosters={f"a:1{ASKER.aad}": [ASKER]}, app_id=APP_ID).start()
    fake_llm = FakeOpenAI(
        first_token_seconds=FIRST_TOKEN_SECONDS, tokens_per_second=TOKENS_PER_SECOND
    ).start()
    tmp = Path(tempfile.mkdtemp(prefix="ragbot-stream-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        data_dir = tmp / "data"
        build_index(data_dir, 0)
        env = slack_env(fake_slack, fake_llm, data_dir, redis_url) | {
            "MICROSOFT_APP_ID": APP_ID,
            "MICROSOFT_APP_PASSWORD": fake_teams.app_password,
            "MICROSOFT_APP_TENANT_ID": TENANT,
            "MICROSOFT_OPENID_METADATA_URL": fake_teams.metadata_url,
            "MICROSOFT_LOGIN_URL": fake_teams.url,
        }
        log = (tmp / "processes.log").open("wb")
        server, port = start_front_door(env, log)
        processes.append(server)
        processes.append(start_worker(env, log))
        url = f"http://127.0.0.1:{port}/slack/events"
        fake_llm.responder = reply_of(40)
        ask(url, fake_slack, "C0WARM", QUESTIONS[0])  # model and index loaded

        firsts = [
            ask(url, fake_slack, "C0STREAM", QUESTIONS[i % 3])[0] for i in range(args.questions)
        ]
        ms = np.array(firsts) * 1000
        print(
            f"event -> first streamed text (first token at {FIRST_TOKEN_SECONDS * 1000:.0f} ms, "
            f"{TOKENS_PER_SECOND} tokens/s): p50 {np.percentile(ms, 50):.0f} ms, "
            f"p95 {np.percentile(ms, 95):.0f} ms over {args.questions} questions"
        )

        teams_url = f"http://127.0.0.1:{port}/api/messages"
        ask_teams(teams_url, fake_teams, QUESTIONS[0])  # the connector's token fetched
        firsts = [ask_teams(teams_url, fake_teams, QUESTIONS[i % 3]) for i in range(args.questions)]
        ms = np.array(firsts) * 1000
        print(
            f"Teams personal chat: activity -> first streamed text: p50 "
            f"{np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms over "
            f"{args.questions} questions"
        )

        fake_llm.responder = reply_of(300)
        for i in range(args.long):
            _, ts = ask(url, fake_slack, "C0LONG", QUESTIONS[i % 3])
            calls = [
                (method, when)
                for (method, params), (_, when) in zip(
                    fake_slack.calls, fake_slack.call_times, strict=False
                )
                if method.startswith("chat.")
                and (
                    params.get("thread_ts") == ts or params.get("ts") in _stream_ts(fake_slack, ts)
                )
            ]
            counts = {m: sum(1 for n, _ in calls if n == m) for m, _ in calls}
            appends = [when for method, when in calls if method == "chat.appendStream"]
            start = next(when for method, when in calls if method == "chat.startStream")
            stop = next(when for method, when in calls if method == "chat.stopStream")
            gaps = np.diff([start, *appends]) * 1000 if appends else np.array([0.0])
            print(
                f"300-token answer {i + 1}: streamed for {stop - start:.1f} s; calls "
                f"{json.dumps(counts)}; {len(appends) / (stop - start) * 0.25:.2f} appends per "
                f"250 ms; shortest gap between streaming calls {gaps.min():.0f} ms"
            )
        for i in range(args.long):
            before = len(fake_teams.stream_updates)
            ask_teams(teams_url, fake_teams, QUESTIONS[i % 3])
            updates = fake_teams.stream_updates[before:]
            kinds = {k: sum(1 for _, kind, _ in updates if kind == k) for _, k, _ in updates}
            times = [when for _, kind, when in updates if kind == "streaming"]
            gaps = np.diff(times) * 1000 if len(times) > 1 else np.array([0.0])
            print(
                f"Teams 300-token answer {i + 1}: streaming updates {json.dumps(kinds)} over "
                f"{times[-1] - times[0]:.1f} s, then the final message; shortest gap between text "
                f"updates {gaps.min():.0f} ms"
            )
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        fake_slack.stop()
        fake_teams.stop()
        fake_llm.stop()
        redis.Redis.from_url(redis_url).flushdb()
        shutil.rmtree(tmp, ignore_errors=True)


def _stream_ts(fake: FakeSlack, thread_ts: str) -> set[str]:
    return {
        m["ts"]
        for messages in fake.messages.values()
        for m in messages
        if m.get("thread_ts") == thread_ts
    }


if __name__ == "__main__":
    main()
