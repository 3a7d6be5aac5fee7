"""Fair use through the real front doors: per-person and per-conversation limits answered with a
friendly message (once), and the asker's place in line while questions wait. No worker runs,
so every question taken stays in the queue."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.fakes.slack_api import FakeSlack
from tests.fakes.teams_api import FakeTeams, Member
from tests.processes import free_port, wait_for
from tests.test_channel_audience import APP_ID, Both, both_chats
from tests.test_slack import mention

SAM = Member("29:1sam", "aad-sam", "sam@acme.com", "Sam Park")
SLOW_DOWN = "asking faster than I can keep up"


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(users={f"U0P{n}": f"p{n}@acme.com" for n in range(6)}).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fake_teams() -> Iterator[FakeTeams]:
    fake = FakeTeams(rosters={f"a:1{SAM.aad}": [SAM]}, app_id=APP_ID).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(
    redis_url: str,
    fake_slack: FakeSlack,
    fake_teams: FakeTeams,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Both]:
    workdir = tmp_path_factory.mktemp("fair")
    queue_db = redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(queue_db).flushdb()
    env = (
        {k: v for k, v in os.environ.items()}
        | both_chats(fake_slack, fake_teams)
        | {
            "REDIS_URL": queue_db,
            "RAGBOT_DATA_DIR": str(workdir / "data"),
            "RAGBOT_ORG_DOMAINS": "acme.com",
            "RAGBOT_QUESTIONS_PER_MINUTE": "3",
            "RAGBOT_CONVERSATION_QUESTIONS_PER_MINUTE": "5",
            "RAGBOT_QUEUE_POSITION_FROM": "2",
        }
    )
    running = Both(env, free_port(), workdir)
    try:
        running.start_server()
        yield running
    finally:
        running.stop()
        redis.Redis.from_url(queue_db).flushdb()


def ask(stack: Both, fake: FakeSlack, channel: str, user: str) -> str:
    ts = fake.user_says(channel, "How long is parental leave?", user)
    assert (
        stack.post_event(mention(channel, "How long is parental leave?", ts, user=user)).status_code
        == 200
    )
    return ts


def replies(fake: FakeSlack, channel: str, ts: str) -> list[str]:
    return [m["text"] for m in fake.bot_messages(channel) if m["thread_ts"] == ts]


def test_a_person_over_the_limit_is_told_once_and_the_place_in_line_is_shown(
    stack: Both, fake_slack: FakeSlack
) -> None:
    queue = redis.Redis.from_url(stack.env["REDIS_URL"])
    seen = []
    for n in range(3):  # each question queued before the next is asked
        ts = ask(stack, fake_slack, "C0ONE", "U0P0")
        seen.append(wait_for(lambda t=ts: replies(fake_slack, "C0ONE", t), 10, "a reply"))
        wait_for(lambda n=n: queue.llen("answer") == n + 1, 10, "the question queued")
    assert seen[0] == ["Searching the docs… :mag:"], "one question waiting: no place in line"
    assert seen[1] == ["Searching the docs… :mag: (you're number 2 in line)"]
    assert seen[2] == ["Searching the docs… :mag: (you're number 3 in line)"]
    fourth = ask(stack, fake_slack, "C0ONE", "U0P0")
    assert SLOW_DOWN in wait_for(lambda: replies(fake_slack, "C0ONE", fourth), 10, "a reply")[0]
    fifth = ask(stack, fake_slack, "C0ONE", "U0P0")
    time.sleep(1)
    assert replies(fake_slack, "C0ONE", fifth) == [], "told once a minute, not at every question"
    assert queue.llen("answer") == 3, "neither was queued"
    # Someone else in the same conversation is still answered.
    other = ask(stack, fake_slack, "C0ONE", "U0P1")
    assert "in line" in wait_for(lambda: replies(fake_slack, "C0ONE", other), 10, "a reply")[0]


def test_a_busy_conversation_is_limited_as_a_whole(stack: Both, fake_slack: FakeSlack) -> None:
    people = ["U0P2", "U0P3", "U0P4", "U0P5", "U0P2", "U0P3"]  # none over their own limit
    threads = [ask(stack, fake_slack, "C0BUSY", person) for person in people]
    texts = [
        wait_for(lambda t=t: replies(fake_slack, "C0BUSY", t), 10, "a reply")[0] for t in threads
    ]
    assert all("Searching" in t for t in texts[:5]) and SLOW_DOWN in texts[5]


def test_teams_applies_the_same_limits(stack: Both, fake_teams: FakeTeams) -> None:
    sent: list[dict[str, Any]] = []
    for _ in range(4):
        activity = fake_teams.personal_message("How long is parental leave?", SAM)
        assert stack.teams(activity, fake_teams).status_code in (200, 202)
        sent.append(activity)
    conversation = sent[0]["conversation"]["id"]

    def reply_to(activity: dict[str, Any]) -> list[str]:
        messages = fake_teams.bot_messages(conversation)
        return [str(m["text"]) for m in messages if m.get("replyToId") == activity["id"]]

    texts = [wait_for(lambda a=a: reply_to(a), 10, "a reply")[0] for a in sent]
    assert all("Searching" in t for t in texts[:3]) and SLOW_DOWN in texts[3]
