"""Slack end to end: signed events into `ragbot serve`, a real Celery worker process on real
Redis, the real slack_sdk/Bolt clients against a fake Slack Web API, answers from the handbook
through a fake OpenAI-compatible LLM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis

from tests.conftest import HANDBOOK
from tests.fakes.flaky_link import FlakyLink
from tests.fakes.openai_api import FakeOpenAI, Fault, cite_first_source
from tests.fakes.slack_api import BOT_USER, TEAM, FakeSlack, SlackFault, sign
from tests.fakes.slack_socket import FakeSocketMode
from tests.processes import RAGBOT, Stack, free_port, wait_for

SECRET = "signing-secret"
ASKER, DANA, ADMIN = "U0ASKER", "U0DANA", "U0ADMIN"


class SlackStack(Stack):
    """The stack, plus signed Slack deliveries."""

    def post_event(
        self,
        event: dict[str, Any],
        event_id: str | None = None,
        retry: int | None = None,
        secret: str = SECRET,
        timestamp: int | None = None,
    ) -> httpx.Response:
        body = json.dumps(
            {
                "token": "unused",
                "team_id": TEAM,
                "api_app_id": "A0RAGBOT",
                "type": "event_callback",
                "event": event,
                "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
                "event_time": int(time.time()),
                "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
            }
        )
        headers = {"Content-Type": "application/json", **sign(secret, body, timestamp)}
        if retry is not None:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return httpx.post(self.url + "/slack/events", content=body, headers=headers, timeout=10)

    def command(
        self, text: str, user: str, response_id: str, fake: FakeSlack, channel: str = "C0GENERAL"
    ) -> httpx.Response:
        body = urlencode(
            {
                "token": "unused",
                "team_id": TEAM,
                "channel_id": channel,
                "user_id": user,
                "command": "/ragbot",
                "text": text,
                "trigger_id": uuid.uuid4().hex,
                "response_url": f"{fake.url}/respond/{response_id}",
                "api_app_id": "A0RAGBOT",
            }
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
        return httpx.post(self.url + "/slack/events", content=body, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(
        users={ASKER: "sam@acme.com", DANA: "dana@acme.com", ADMIN: "ops@acme.com"}
    ).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(
    handbook_data_dir: Path,
    redis_url: str,
    fake_slack: FakeSlack,
    fake_llm: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SlackStack]:
    workdir = tmp_path_factory.mktemp("slack")
    data_dir = workdir / "data"
    shutil.copytree(handbook_data_dir, data_dir)
    queue_db = redis_url.rsplit("/", 1)[0] + "/10"
    redis.Redis.from_url(queue_db).flushdb()
    env = {k: v for k, v in os.environ.items()} | {
        "REDIS_URL": queue_db,
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        # Far more questions a minute than people ask: fair use is tested on its own.
        "RAGBOT_QUESTIONS_PER_MINUTE": "100000",
        "RAGBOT_CONVERSATION_QUESTIONS_PER_MINUTE": "100000",
        "SLACK_API_URL": fake_slack.api_url,
        "RAGBOT_DATA_DIR": str(data_dir),
        "FILES_PATH": str(HANDBOOK),
        "RAGBOT_ORG_DOMAINS": "acme.com",
        "RAGBOT_ADMINS": ADMIN,
        "OPENAI_API_KEY": fake_llm.api_key,
        "OPENAI_BASE_URL": fake_llm.base_url,
        "RAGBOT_TASK_VISIBILITY_SECONDS": "8",
        "RAGBOT_LLM_TIMEOUT_SECONDS": "5",
    }
    running = SlackStack(env, free_port(), workdir)
    running.start_server()
    running.start_worker()
    yield running
    running.stop()
    redis.Redis.from_url(queue_db).flushdb()


def mention(
    channel: str, text: str, ts: str, user: str = ASKER, thread_ts: str | None = None
) -> dict[str, Any]:
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def answer_in(fake: FakeSlack, channel: str, thread_ts: str, timeout: float = 60) -> dict[str, Any]:
    """The bot's reply in the thread once the placeholder has been replaced."""

    def done() -> dict[str, Any] | None:
        for message in fake.bot_messages(channel):
            if message["thread_ts"] == thread_ts and message.get("edited"):
                return message
        return None

    return wait_for(done, timeout, f"an answer in {channel}/{thread_ts}")


def replies_in(fake: FakeSlack, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    return [m for m in fake.bot_messages(channel) if m["thread_ts"] == thread_ts]


def metric_value(metrics: str, series: str) -> float | None:
    """The value of one series (name and labels as Prometheus prints them) on a /metrics page."""
    for line in metrics.splitlines():
        if line.startswith(f"{series} "):
            return float(line.split()[-1])
    return None


def block_text(message: dict[str, Any]) -> str:
    parts = []
    for block in message.get("blocks", []):
        if block["type"] == "section":
            parts.append(block["text"]["text"])
        elif block["type"] == "context":
            parts += [e["text"] for e in block["elements"]]
    return "\n".join(parts)


def test_a_mention_gets_one_threaded_cited_answer(stack: SlackStack, fake_slack: FakeSlack) -> None:
    channel = "C0GENERAL"
    ts = fake_slack.user_says(channel, "how long is parental leave?", ASKER)
    started = time.perf_counter()
    response = stack.post_event(mention(channel, "How long is parental leave?", ts))
    assert response.status_code == 200 and time.perf_counter() - started < 3
    reply = answer_in(fake_slack, channel, ts)
    text = block_text(reply)
    assert "Leave Policy" in text and "[1]" in text and "updated" in text
    assert any(b["type"] == "actions" for b in reply["blocks"]), "feedback buttons"
    assert len(replies_in(fake_slack, channel, ts)) == 1


def test_bad_signatures_and_stale_requests_are_refused(
    stack: SlackStack, fake_slack: FakeSlack
) -> None:
    before = len(fake_slack.called("chat.postMessage"))
    ts = fake_slack.next_ts()
    assert stack.post_event(mention("C0GENERAL", "hi?", ts), secret="wrong").status_code == 401
    stale = int(time.time()) - 600
    assert stack.post_event(mention("C0GENERAL", "hi?", ts), timestamp=stale).status_code == 401
    unsigned = httpx.post(stack.url + "/slack/events", content="{}", timeout=5)
    assert unsigned.status_code == 401
    time.sleep(1)
    assert len(fake_slack.called("chat.postMessage")) == before


def test_malformed_requests_get_4xx_without_a_traceback(stack: SlackStack) -> None:
    url = stack.url + "/slack/events"
    garbage = "not json at all {"
    bad_time = {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}
    signed_garbage = {"Content-Type": "application/json", **sign(SECRET, garbage)}
    responses = [
        httpx.post(url, content=garbage, timeout=5),
        httpx.post(url, content=garbage, headers=bad_time, timeout=5),
        httpx.post(url, content=b"\xff\xfe{", headers=sign(SECRET, "x"), timeout=5),
        httpx.post(url, content=garbage, headers=signed_garbage, timeout=5),
        httpx.post(
            url,
            content="[1, 2]",
            headers={"Content-Type": "application/json", **sign(SECRET, "[1, 2]")},
            timeout=5,
        ),
    ]
    assert [r.status_code for r in responses] == [401, 401, 401, 400, 400]
    assert all(len(r.content) < 200 for r in responses)
    logs = "".join(p.read_text(errors="replace") for p in stack.logs.glob("serve-*.log"))
    assert "Traceback" not in logs


def test_retries_and_the_mention_message_pair_answer_once(
    stack: SlackStack, fake_slack: FakeSlack
) -> None:
    channel = "C0GENERAL"
    ts = fake_slack.user_says(channel, "expense deadline", ASKER)
    event = mention(channel, "How many days do I have to submit an expense?", ts)
    assert stack.post_event(event, event_id="EvSAME").status_code == 200
    assert stack.post_event(event, event_id="EvSAME", retry=1).status_code == 200
    assert stack.post_event(event, event_id="EvSAME", retry=2).status_code == 200
    as_message = {**event, "type": "message", "channel_type": "channel"}
    assert stack.post_event(as_message, event_id="EvOTHER").status_code == 200
    answer_in(fake_slack, channel, ts)
    time.sleep(2)
    assert len(replies_in(fake_slack, channel, ts)) == 1


def test_restricted_documents_reach_a_dm_but_never_a_channel(
    stack: SlackStack, fake_slack: FakeSlack
) -> None:
    question = "What is the salary range for a Staff Engineer?"
    ts = fake_slack.user_says("C0GENERAL", question, DANA)
    stack.post_event(mention("C0GENERAL", question, ts, user=DANA))
    in_channel = block_text(answer_in(fake_slack, "C0GENERAL", ts))
    assert "Salary Bands" not in in_channel and "couldn't find" in in_channel

    dm_ts = fake_slack.user_says("D0DANA", question, DANA)
    stack.post_event(
        {
            "type": "message",
            "channel": "D0DANA",
            "user": DANA,
            "text": question,
            "ts": dm_ts,
            "channel_type": "im",
        }
    )
    assert "Salary Bands 2026" in block_text(answer_in(fake_slack, "D0DANA", dm_ts))


def test_follow_ups_in_an_answered_thread_need_no_mention(
    stack: SlackStack, fake_slack: FakeSlack, fake_llm: FakeOpenAI
) -> None:
    channel = "C0GENERAL"
    root = fake_slack.user_says(channel, "<@UBOT> How do I connect to the VPN?", ASKER)
    stack.post_event(mention(channel, "How do I connect to the VPN?", root))
    answer_in(fake_slack, channel, root)
    follow = fake_slack.user_says(channel, "and what does VPN-E42 mean?", ASKER, thread_ts=root)
    stack.post_event(
        {
            "type": "message",
            "channel": channel,
            "user": ASKER,
            "ts": follow,
            "thread_ts": root,
            "text": "and what does VPN-E42 mean?",
            "channel_type": "channel",
        }
    )
    wait_for(
        lambda: len([m for m in replies_in(fake_slack, channel, root) if m.get("edited")]) == 2,
        60,
        "the follow-up answer",
    )
    history = fake_llm.requests[-1][1]["messages"][1:-1]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert "How do I connect to the VPN?" in history[0]["content"]

    stranger_root = fake_slack.user_says(channel, "lunch?", ASKER)
    other = fake_slack.user_says(channel, "pizza", ASKER, thread_ts=stranger_root)
    stack.post_event(
        {
            "type": "message",
            "channel": channel,
            "user": ASKER,
            "ts": other,
            "thread_ts": stranger_root,
            "text": "pizza",
            "channel_type": "channel",
        }
    )
    time.sleep(2)
    assert replies_in(fake_slack, channel, stranger_root) == []


def test_admin_commands_are_for_admins(stack: SlackStack, fake_slack: FakeSlack) -> None:
    refused = stack.command("status", ASKER, "r1", fake_slack)
    assert refused.status_code == 200 and "only ragbot admins" in refused.text
    accepted = stack.command("status", ADMIN, "r2", fake_slack)
    assert accepted.status_code == 200 and "Checking" in accepted.text
    status = wait_for(
        lambda: [r for r in fake_slack.responses if "files:" in r.get("text", "")],
        60,
        "the status reply",
    )
    assert "12 documents" in status[0]["text"]
    assert "Ask me about our docs" in stack.command("help", ASKER, "r3", fake_slack).text


def test_slash_ask_answers_only_the_asker(stack: SlackStack, fake_slack: FakeSlack) -> None:
    response = stack.command("ask how do I roll back a deploy?", ASKER, "r4", fake_slack)
    assert response.status_code == 200 and "only you" in response.text
    reply = wait_for(lambda: [r for r in fake_slack.responses if r.get("blocks")], 60, "ask reply")
    assert reply[-1]["response_type"] == "ephemeral"
    assert "Deploying Services" in json.dumps(reply[-1]["blocks"])


def test_a_rate_limited_update_is_retried(stack: SlackStack, fake_slack: FakeSlack) -> None:
    fake_slack.faults.append(SlackFault("chat.update", 429, retry_after="1"))
    channel = "C0GENERAL"
    ts = fake_slack.user_says(channel, "hotel limit", ASKER)
    stack.post_event(mention(channel, "What is the hotel limit per night?", ts))
    reply = answer_in(fake_slack, channel, ts)
    assert "Travel and Expense Policy" in block_text(reply)
    updates = [c for c in fake_slack.called("chat.update") if c.get("channel") == channel]
    assert len(updates) >= 2 and not fake_slack.faults


def test_a_killed_worker_still_answers_exactly_once(
    stack: SlackStack, fake_slack: FakeSlack, fake_llm: FakeOpenAI
) -> None:
    fake_llm.faults = [Fault(delay=4, asking="How many paid sick days do I get?")]
    channel = "C0GENERAL"
    ts = fake_slack.user_says(channel, "sick leave", ASKER)
    calls_before = fake_llm.count("/chat/completions")
    stack.post_event(mention(channel, "How many paid sick days do I get?", ts))
    wait_for(
        lambda: fake_llm.count("/chat/completions") > calls_before, 30, "the worker to ask the LLM"
    )
    stack.kill_worker()
    stack.start_worker()
    reply = answer_in(fake_slack, channel, ts, timeout=90)
    assert "Leave Policy" in block_text(reply)
    time.sleep(3)
    assert len(replies_in(fake_slack, channel, ts)) == 1


def test_health_readiness_and_metrics(stack: SlackStack, fake_slack: FakeSlack) -> None:
    ts = fake_slack.user_says("C0GENERAL", "laptop", ASKER)
    stack.post_event(mention("C0GENERAL", "When are laptops replaced?", ts))
    answer_in(fake_slack, "C0GENERAL", ts)
    assert httpx.get(stack.url + "/readyz").json() == {"status": "ready"}
    metrics = httpx.get(stack.url + "/metrics").text
    assert 'ragbot_questions_total{kind="mention",platform="slack"}' in metrics
    assert "ragbot_duplicate_deliveries_total" in metrics
    assert (metric_value(metrics, 'ragbot_answers_total{outcome="answered"}') or 0) >= 1
    assert "ragbot_answer_seconds_count" in metrics
    latency = {
        line.split("{")[1].split("}")[0]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("ragbot_answer_latency_seconds_bucket")
        and 'platform="slack"' in line
        and 'outcome="answered"' in line
    }
    assert latency, "a latency histogram from the workers, by platform and outcome"
    counts = list(latency.values())
    assert counts == sorted(counts) and counts[-1] >= 1, "cumulative buckets up to +Inf"
    assert 'ragbot_queue_depth{queue="answer"} 0.0' in metrics
    assert 'ragbot_search_seconds_count{platform="slack"}' in metrics


def test_slack_connect_channels_see_only_public_documents(
    stack: SlackStack, fake_slack: FakeSlack
) -> None:
    question = "How do I roll back a production deploy?"
    fake_slack.external_channels.add("C0PARTNER")
    ts = fake_slack.user_says("C0PARTNER", question, ASKER)
    stack.post_event(mention("C0PARTNER", question, ts))
    shared = block_text(answer_in(fake_slack, "C0PARTNER", ts))
    assert "Deploying Services" not in shared and "couldn't find" in shared

    internal_ts = fake_slack.user_says("C0GENERAL", question, ASKER)
    stack.post_event(mention("C0GENERAL", question, internal_ts))
    assert "Deploying Services" in block_text(answer_in(fake_slack, "C0GENERAL", internal_ts))


def test_channels_with_guests_or_unknown_members_see_only_public_documents(
    stack: SlackStack, fake_slack: FakeSlack
) -> None:
    question = "How do I roll back a production deploy?"
    fake_slack.users["U0GUEST"] = "pat@partner.example"
    fake_slack.guests.add("U0GUEST")
    fake_slack.members["C0GUESTS"] = [BOT_USER, ASKER, "U0GUEST"]
    fake_slack.members["C0STRANGE"] = [BOT_USER, ASKER, "U0NOBODY"]  # users.info: not found
    try:
        for channel in ("C0GUESTS", "C0STRANGE"):
            ts = fake_slack.user_says(channel, question, ASKER)
            stack.post_event(mention(channel, question, ts))
            answer = block_text(answer_in(fake_slack, channel, ts))
            assert "Deploying Services" not in answer and "couldn't find" in answer, channel
    finally:
        del fake_slack.users["U0GUEST"]


def test_a_failing_llm_gets_a_clear_message_in_the_thread(
    stack: SlackStack, fake_slack: FakeSlack, fake_llm: FakeOpenAI
) -> None:
    # The first try and its one retry; an earlier test's answer may still be on its way.
    fake_llm.faults = [Fault(status=500, asking="How long is parental leave?")] * 2
    ts = fake_slack.user_says("C0GENERAL", "parental leave?", ASKER)
    stack.post_event(mention("C0GENERAL", "How long is parental leave?", ts))
    text = block_text(answer_in(fake_slack, "C0GENERAL", ts))
    assert "couldn't reach the language model" in text


def test_reindex_is_queued_and_reports_when_done(stack: SlackStack, fake_slack: FakeSlack) -> None:
    queued = stack.command("reindex files", ADMIN, "r9", fake_slack)
    assert "Queued a reindex of files" in queued.text
    done = wait_for(
        lambda: [r for r in fake_slack.responses if "Reindexed files" in r.get("text", "")],
        60,
        "the reindex report",
    )
    assert "unchanged" in done[0]["text"]
    assert "only ragbot admins" in stack.command("reindex files", ASKER, "r10", fake_slack).text
    metrics = httpx.get(stack.url + "/metrics").text
    assert 'ragbot_sync_seconds_count{source="files"}' in metrics
    assert 'ragbot_embedded_chunks_total{source="files"}' in metrics
    synced = metric_value(metrics, 'ragbot_source_last_success_timestamp_seconds{source="files"}')
    assert synced is not None and time.time() - synced < 3600


def test_feedback_clicks_are_recorded_with_the_answer(
    stack: SlackStack, fake_slack: FakeSlack, redis_url: str
) -> None:
    ts = fake_slack.user_says("C0GENERAL", "sick days", ASKER)
    stack.post_event(mention("C0GENERAL", "How many paid sick days do I get?", ts))
    reply = answer_in(fake_slack, "C0GENERAL", ts)
    button = next(b for b in reply["blocks"] if b["type"] == "actions")["elements"][0]
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": ASKER},
        "api_app_id": "A0RAGBOT",
        "container": {"type": "message", "message_ts": reply["ts"]},
        "channel": {"id": "C0GENERAL"},
        "trigger_id": "t",
        "response_url": f"{fake_slack.url}/respond/fb",
        "actions": [{**button, "block_id": "feedback", "action_ts": str(time.time())}],
    }
    body = urlencode({"payload": json.dumps(payload)})
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
    assert httpx.post(stack.url + "/slack/events", content=body, headers=headers).status_code == 200
    feedback = redis.Redis.from_url(stack.env["REDIS_URL"])
    records = wait_for(lambda: feedback.lrange("ragbot:feedback", 0, -1), 10, "feedback")
    record = json.loads(records[-1])
    assert record["vote"] == "up" and record["user"] == ASKER
    assert record["question_id"] == f"slack:{TEAM}:C0GENERAL:{ts}"
    assert record["answer"]["sources"] and not record["answer"]["abstained"]


def test_socket_mode_delivers_events_without_a_public_url(
    stack: SlackStack, fake_slack: FakeSlack
) -> None:
    socket_mode = FakeSocketMode().start()
    fake_slack.socket_url = socket_mode.url
    env = {k: v for k, v in stack.env.items() if k != "SLACK_SIGNING_SECRET"}
    env["SLACK_APP_TOKEN"] = fake_slack.app_token
    log = (stack.logs / "socket-serve.log").open("wb")
    server = subprocess.Popen(
        [RAGBOT, "serve", "--port", str(free_port())], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        assert socket_mode.connected.wait(30), "the front door opened the websocket"
        ts = fake_slack.user_says("C0SOCKET", "hotel limit", ASKER)
        envelope = socket_mode.push_event(
            {
                "token": "unused",
                "team_id": TEAM,
                "api_app_id": "A0RAGBOT",
                "type": "event_callback",
                "event": mention("C0SOCKET", "What is the hotel limit per night?", ts),
                "event_id": "EvSocket1",
                "event_time": int(time.time()),
                "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
            }
        )
        assert "Travel and Expense Policy" in block_text(answer_in(fake_slack, "C0SOCKET", ts))
        assert envelope in socket_mode.acks
    finally:
        server.terminate()
        server.wait(10)
        socket_mode.stop()
        fake_slack.socket_url = None


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RAGBOT, *args], env=env, capture_output=True, text=True, timeout=180)


def test_the_cli_hands_its_work_to_the_workers(stack: SlackStack, redis_url: str) -> None:
    asked = run_cli(stack.env, "ask", "How do I roll back a production deploy?", "--json")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["sources"][0]["title"] == "Deploying Services"
    status = run_cli(stack.env, "status", "--json")
    assert json.loads(status.stdout)["sources"][0]["documents"] == 12
    synced = run_cli(stack.env, "sync", "files")
    assert synced.returncode == 0 and synced.stdout.startswith("files: 0 indexed")

    no_worker = {**stack.env, "REDIS_URL": redis_url.rsplit("/", 1)[0] + "/12"}
    refused = run_cli(no_worker, "ask", "anything")
    assert refused.returncode == 1 and "no worker is running" in refused.stderr


def test_edits_deletions_and_bot_messages_are_ignored(
    stack: SlackStack, fake_slack: FakeSlack
) -> None:
    channel = "D0QUIET"
    ts = fake_slack.next_ts()
    base = {"type": "message", "channel": channel, "channel_type": "im", "ts": ts}
    stack.post_event(
        {
            **base,
            "subtype": "message_changed",
            "hidden": True,
            "message": {"type": "message", "user": ASKER, "text": "edited?", "ts": ts},
        }
    )
    stack.post_event({**base, "subtype": "message_deleted", "hidden": True, "deleted_ts": ts})
    stack.post_event({**base, "bot_id": "B0OTHER", "text": "I am another bot", "user": "U0BOT2"})
    stack.post_event(mention(channel, "loop?", fake_slack.next_ts()) | {"bot_id": "B0OTHER"})
    time.sleep(2)
    assert fake_slack.bot_messages(channel) == []


def test_without_redis_the_front_door_answers_by_itself(
    stack: SlackStack, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(Path(stack.env["RAGBOT_DATA_DIR"]), data_dir)
    env = {k: v for k, v in stack.env.items() if k != "REDIS_URL"}
    env["RAGBOT_DATA_DIR"] = str(data_dir)
    alone = SlackStack(env, free_port(), stack.logs)
    alone.start_server()
    try:
        ts = fake_slack.user_says("C0ALONE", "rollback", ASKER)
        alone.post_event(mention("C0ALONE", "How do I roll back a production deploy?", ts))
        assert "Deploying Services" in block_text(answer_in(fake_slack, "C0ALONE", ts))
        assert httpx.get(alone.url + "/readyz").json() == {"status": "ready"}
    finally:
        alone.stop()


@pytest.fixture
def link(redis_url: str) -> Iterator[FlakyLink]:
    """The test's own way to Redis, to cut or freeze while the real server stays up."""
    flaky = FlakyLink.to(redis_url)
    yield flaky
    flaky.close()


def test_a_redis_blip_while_posting_delays_the_answer_but_never_loses_it(
    stack: SlackStack,
    fake_slack: FakeSlack,
    fake_llm: FakeOpenAI,
    redis_url: str,
    link: FlakyLink,
    tmp_path: Path,
) -> None:
    """Redis goes away after the question is queued and comes back while the answer is posted."""
    queue_db = link.url(db=11)
    redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/11").flushdb()
    data_dir = tmp_path / "data"  # this stack's worker owns its own copy of the index
    shutil.copytree(Path(stack.env["RAGBOT_DATA_DIR"]), data_dir)
    env = stack.env | {"REDIS_URL": queue_db, "RAGBOT_DATA_DIR": str(data_dir)}
    blip = SlackStack(env, free_port(), stack.logs)
    blip.start_server()
    blip.start_worker()
    try:
        # The answer is being written when Redis goes.
        fake_llm.faults.append(Fault(delay=3, asking="How do I roll back a production deploy?"))
        asked = len(fake_llm.requests)
        ts = fake_slack.user_says("C0BLIP", "How do I roll back a production deploy?", ASKER)
        blip.post_event(mention("C0BLIP", "How do I roll back a production deploy?", ts))
        wait_for(lambda: replies_in(fake_slack, "C0BLIP", ts), 30, "the placeholder")
        wait_for(lambda: len(fake_llm.requests) > asked, 30, "the model call")
        link.cut()
        time.sleep(6)
        link.restore()
        answer = answer_in(fake_slack, "C0BLIP", ts, timeout=90)
        assert "Deploying Services" in block_text(answer)
        time.sleep(3)
        assert len(replies_in(fake_slack, "C0BLIP", ts)) == 1
    finally:
        blip.stop()


def test_while_redis_is_down_each_question_is_told_once(
    stack: SlackStack, fake_slack: FakeSlack, link: FlakyLink
) -> None:
    down = SlackStack(stack.env | {"REDIS_URL": link.url(db=11)}, free_port(), stack.logs)
    down.start_server()
    link.cut()
    try:
        ts = fake_slack.user_says("C0DOWN", "How do I roll back a production deploy?", ASKER)
        event = mention("C0DOWN", "How do I roll back a production deploy?", ts)
        for retry in (None, 1, 2):  # Slack's retries repeat the event id
            assert down.post_event(event, event_id="EvDOWN1", retry=retry).status_code == 200
        as_message = event | {"type": "message", "channel_type": "channel"}
        assert down.post_event(as_message, event_id="EvDOWN2").status_code == 200
        wait_for(lambda: replies_in(fake_slack, "C0DOWN", ts), 30, "the notice")
        time.sleep(2)
        (notice,) = replies_in(fake_slack, "C0DOWN", ts)
        assert "queue is down" in notice["text"]

        told = len(fake_slack.responses)
        assert down.command("ask When are laptops replaced?", ASKER, "down", fake_slack).is_success
        wait_for(lambda: len(fake_slack.responses) > told, 30, "the private notice")
        assert "queue is down" in fake_slack.responses[-1]["text"]
    finally:
        down.stop()


def test_a_hanging_redis_never_holds_up_acks_or_health_checks(
    stack: SlackStack, fake_slack: FakeSlack, link: FlakyLink
) -> None:
    """Slack gives up on an event not acknowledged within 3 s; health checks must answer too."""
    hung = SlackStack(stack.env | {"REDIS_URL": link.url(db=11)}, free_port(), stack.logs)
    hung.start_server()
    link.freeze()
    try:
        channel = "C0HUNG"
        asked = [fake_slack.user_says(channel, f"question {n}?", ASKER) for n in range(3)]

        def deliver(ts: str) -> int:
            event = mention(channel, "How do I roll back a production deploy?", ts)
            body = json.dumps(
                {"team_id": TEAM, "type": "event_callback", "event": event, "event_id": ts}
            )
            headers = {"Content-Type": "application/json", **sign(SECRET, body)}
            url = hung.url + "/slack/events"
            return httpx.post(url, content=body, headers=headers, timeout=3).status_code

        with ThreadPoolExecutor(max_workers=4) as pool:
            acks = list(pool.map(deliver, asked))
            health = pool.submit(lambda: httpx.get(hung.url + "/healthz", timeout=3)).result()
        assert acks == [200, 200, 200] and health.status_code == 200
        for ts in asked:  # each asker is told, once, that the question could not be taken
            wait_for(lambda ts=ts: replies_in(fake_slack, channel, ts), 30, "the notice")
            (notice,) = replies_in(fake_slack, channel, ts)
            assert "queue is down" in notice["text"]
    finally:
        hung.stop()


def test_questions_asked_together_are_answered_together(
    stack: SlackStack, fake_slack: FakeSlack, fake_llm: FakeOpenAI
) -> None:
    """One worker process writes several answers at once while the model takes its time."""
    fake_llm.reply_seconds, fake_llm.max_in_flight = 1.5, 0
    try:
        asked = []
        for n in range(6):
            ts = fake_slack.user_says("C0BUSY", f"question {n}", ASKER)
            stack.post_event(mention("C0BUSY", "How do I roll back a production deploy?", ts))
            asked.append(ts)
        for ts in asked:
            assert "Deploying Services" in block_text(answer_in(fake_slack, "C0BUSY", ts))
        assert fake_llm.max_in_flight >= 4, "answers were written one after another"
    finally:
        fake_llm.reply_seconds = 0.0


def test_an_answer_slower_than_the_visibility_timeout_runs_once(
    stack: SlackStack, fake_slack: FakeSlack, fake_llm: FakeOpenAI
) -> None:
    """Slack throttles the answer's post for longer than RAGBOT_TASK_VISIBILITY_SECONDS (8 s):
    the worker still holds the question, so no second worker (or thread) answers it again."""
    fake_slack.faults.append(SlackFault("chat.update", 429, retry_after="14"))
    question = "What is the hotel limit per night in Seoul?"
    ts = fake_slack.user_says("C0SLOW", question, ASKER)
    stack.post_event(mention("C0SLOW", question, ts))
    answer = answer_in(fake_slack, "C0SLOW", ts, timeout=90)
    assert "Travel and Expense Policy" in block_text(answer)
    time.sleep(10)  # a second run would have started by now
    asked = [b for p, b in fake_llm.requests if question in json.dumps(b, ensure_ascii=False)]
    assert len(asked) == 1
    assert len(replies_in(fake_slack, "C0SLOW", ts)) == 1


def test_a_pasted_wall_of_text_is_cut_before_it_is_embedded_or_sent(
    stack: SlackStack, fake_slack: FakeSlack, fake_llm: FakeOpenAI
) -> None:
    question = "How do I roll back a production deploy? " + "stack trace line " * 2400
    ts = fake_slack.user_says("C0WALL", question, ASKER)
    asked = len(fake_llm.requests)
    stack.post_event(mention("C0WALL", question, ts))
    answer_in(fake_slack, "C0WALL", ts)
    (request,) = [b for _, b in fake_llm.requests[asked:] if "roll back" in json.dumps(b)]
    sent = request["messages"][-1]["content"]
    assert "stack trace line" in sent and sent.count("stack trace line") < 150


def long_reply(messages: list[dict[str, str]]) -> str:
    """A cited reply of about a hundred tokens, with one citation of a source never given."""
    first = cite_first_source(messages)
    return f"{first} " + " ".join(f"Detail {n} of the policy [1]." for n in range(12)) + " See [7]."


def stream_calls(fake: FakeSlack, method: str, ts: str | None = None) -> list[dict[str, Any]]:
    return [c for c in fake.called(method) if ts is None or c.get("ts") == ts]


def test_an_llm_answer_streams_into_the_thread_then_becomes_the_checked_answer(
    stack: SlackStack, fake_slack: FakeSlack, fake_llm: FakeOpenAI
) -> None:
    fake_llm.responder, fake_llm.first_token_seconds, fake_llm.tokens_per_second = (
        long_reply,
        0.3,
        40,
    )
    try:
        channel = "C0GENERAL"
        ts = fake_slack.user_says(channel, "parental leave", ASKER)
        stack.post_event(mention(channel, "How long is parental leave?", ts))
        reply = answer_in(fake_slack, channel, ts)
    finally:
        fake_llm.responder, fake_llm.first_token_seconds, fake_llm.tokens_per_second = (
            cite_first_source,
            0.0,
            0.0,
        )
    (start,) = [c for c in fake_slack.called("chat.startStream") if c["thread_ts"] == ts]
    assert start["recipient_user_id"] == ASKER and start["recipient_team_id"]
    appends = stream_calls(fake_slack, "chat.appendStream", reply["ts"])
    streamed = start.get("markdown_text", "") + "".join(a["markdown_text"] for a in appends)
    assert streamed and "[7]" not in streamed, "an unknown source is never shown"
    assert len(stream_calls(fake_slack, "chat.stopStream", reply["ts"])) == 1
    text = block_text(reply)
    assert "Leave Policy" in text and "[7]" not in text and "Sources" in text
    assert any(b["type"] == "actions" for b in reply["blocks"]), "feedback buttons"
    assert not reply.get("streaming")
    assert replies_in(fake_slack, channel, ts) == [reply], "the placeholder made way for it"


def test_a_worker_killed_mid_stream_leaves_one_answer(
    stack: SlackStack, fake_slack: FakeSlack, fake_llm: FakeOpenAI
) -> None:
    fake_llm.responder, fake_llm.tokens_per_second = long_reply, 4  # about 30 s of writing
    try:
        channel = "C0GENERAL"
        ts = fake_slack.user_says(channel, "sick days", ASKER)
        stack.post_event(mention(channel, "How many paid sick days do I get?", ts))
        wait_for(
            lambda: [c for c in fake_slack.called("chat.startStream") if c["thread_ts"] == ts],
            60,
            "the stream to start",
        )
        stack.kill_worker()
        fake_llm.tokens_per_second = 0
        stack.start_worker()
        reply = answer_in(fake_slack, channel, ts, timeout=90)
    finally:
        fake_llm.responder, fake_llm.tokens_per_second = cite_first_source, 0.0
    time.sleep(2)
    assert replies_in(fake_slack, channel, ts) == [reply], "one message: no second stream"
    assert len([c for c in fake_slack.called("chat.startStream") if c["thread_ts"] == ts]) == 1
    assert not reply.get("streaming") and "Leave Policy" in block_text(reply)


def test_the_assistant_panel_offers_prompts_and_answers_the_asker_in_its_thread(
    stack: SlackStack, fake_slack: FakeSlack
) -> None:
    root = fake_slack.next_ts()
    started = {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": DANA,
            "context": {"channel_id": "C0GENERAL", "team_id": TEAM, "enterprise_id": None},
            "channel_id": "D0PANEL",
            "thread_ts": root,
        },
        "event_ts": root,
    }
    assert stack.post_event(started).status_code == 200
    panel = wait_for(
        lambda: fake_slack.assistant_threads.get(("D0PANEL", root)), 30, "suggested prompts"
    )
    assert [p["title"] for p in panel["prompts"]] == [
        "How do I request time off?",
        "What is our expense policy?",
        "How do I set up the VPN?",
    ]

    question = "What is the salary range for a Staff Engineer?"
    ts = fake_slack.user_says("D0PANEL", question, DANA, thread_ts=root)
    message = {
        "type": "message",
        "channel": "D0PANEL",
        "user": DANA,
        "text": question,
        "ts": ts,
        "thread_ts": root,
        "channel_type": "im",
    }
    assert stack.post_event(message).status_code == 200
    reply = answer_in(fake_slack, "D0PANEL", root)
    assert "Salary Bands 2026" in block_text(reply), "the asker's own documents"
    assert panel["title"] == question and panel["statuses"] == ["is searching the docs…"]
    placeholders = [
        c for c in fake_slack.called("chat.postMessage") if c.get("channel") == "D0PANEL"
    ]
    assert placeholders == [], "the panel's status instead of a placeholder"
