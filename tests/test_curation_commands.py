"""Running it like a service, through the real front doors: a channel's knowledge scope, admins'
document preferences and the knowledge-gaps report and digest, on Slack and on Teams.

`ragbot serve` and a real worker on real Redis, the real Slack and Bot Framework clients against
the fakes, the sample handbook indexed with the default embedder. Answers are extractive (no LLM
key), so a fact in an answer shows which document it came from.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis
from celery import Celery

from tests.conftest import HANDBOOK
from tests.fakes.slack_api import TEAM, FakeSlack, sign
from tests.fakes.teams_api import FakeTeams, Member
from tests.processes import free_port, wait_for
from tests.test_channel_audience import APP_ID, Both, ask_teams, both_chats
from tests.test_slack import SECRET, answer_in, block_text, mention
from workers import jobs
from workers.rag.answer import ABSTAIN_EN

ADMIN, ASKER = "U0ADMIN", "U0ASKER"
T_ADMIN = Member("29:1admin", "aad-admin", "ops@acme.com", "Ops Admin")
T_ASKER = Member("29:1asker", "aad-asker", "sam@acme.com", "Sam Park")
CHANNEL = "C0CURATE"
TEAMS_CHANNEL = "19:curate000@thread.tacv2"
LEAVE = "16 weeks"  # leave-policy.md, at the handbook's top
ROLLBACK = "acme release rollback"  # engineering/deploy-guide.md
LEAVE_Q = "How many weeks of parental leave do birthing parents get?"
LEAVE_URL = (HANDBOOK / "leave-policy.md").resolve().as_uri()


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(users={ADMIN: "ops@acme.com", ASKER: "sam@acme.com"}).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fake_teams() -> Iterator[FakeTeams]:
    rosters = {
        TEAMS_CHANNEL: [T_ADMIN, T_ASKER],
        f"a:1{T_ADMIN.aad}": [T_ADMIN],
        f"a:1{T_ASKER.aad}": [T_ASKER],
    }
    # The channel questions are asked in is the team's first one, which Teams leaves unnamed.
    channels = {TEAMS_CHANNEL: [(TEAMS_CHANNEL, None), ("19:payroll000@thread.tacv2", "Payroll")]}
    fake = FakeTeams(rosters=rosters, channels=channels, app_id=APP_ID).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(
    handbook_data_dir: Path,
    redis_url: str,
    fake_slack: FakeSlack,
    fake_teams: FakeTeams,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Both]:
    workdir = tmp_path_factory.mktemp("curation")
    shutil.copytree(handbook_data_dir, workdir / "data")
    queue_db = redis_url.rsplit("/", 1)[0] + "/15"
    redis.Redis.from_url(queue_db).flushdb()
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        | both_chats(fake_slack, fake_teams)
        | {
            "REDIS_URL": queue_db,
            "RAGBOT_DATA_DIR": str(workdir / "data"),
            "FILES_PATH": str(HANDBOOK),
            "RAGBOT_ORG_DOMAINS": "acme.com",
            "RAGBOT_ADMINS": f"{ADMIN},{T_ADMIN.aad}",
        }
    )
    running = Both(env, free_port(), workdir)
    try:
        running.start_server()
        running.start_worker()
        yield running
    finally:
        running.stop()
        redis.Redis.from_url(queue_db).flushdb()


def slash(stack: Both, fake: FakeSlack, text: str, user: str = ADMIN) -> str:
    """A `/ragbot` command in the channel; the immediate (ephemeral) reply."""
    response = stack.command(text, user, str(time.time_ns()), fake, CHANNEL)
    assert response.status_code == 200
    return response.text


def ask_slack(stack: Both, fake: FakeSlack, question: str) -> tuple[str, dict[str, Any]]:
    ts = fake.user_says(CHANNEL, question, ASKER)
    assert stack.post_event(mention(CHANNEL, question, ts)).status_code == 200
    reply = answer_in(fake, CHANNEL, ts)
    return block_text(reply), reply


def vote_down(stack: Both, reply: dict[str, Any], user: str = ASKER) -> None:
    """A click on 👎 under an answer, signed as Slack sends it."""
    actions = next(b for b in reply["blocks"] if b["type"] == "actions")["elements"]
    button = next(b for b in actions if b["action_id"] == jobs.FEEDBACK_DOWN)
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": "A0RAGBOT",
        "container": {"type": "message", "message_ts": reply["ts"]},
        "channel": {"id": CHANNEL},
        "trigger_id": "t",
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [{**button, "block_id": "feedback", "action_ts": str(time.time())}],
    }
    body = urlencode({"payload": json.dumps(payload)})
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
    assert httpx.post(stack.url + "/slack/events", content=body, headers=headers).status_code == 200


def teams_says(stack: Both, fake: FakeTeams, activity: dict[str, Any]) -> list[str]:
    """What the bot replied to one Teams message (waiting for at least one reply)."""
    assert stack.teams(activity, fake).status_code in (200, 202)
    conversation = activity["conversation"]["id"]

    def replies() -> list[str]:
        return [
            str(m.get("text"))
            for m in fake.bot_messages(conversation)
            if m.get("replyToId") == activity["id"]
        ]

    return wait_for(replies, 20, "a reply")


def test_a_channel_scope_keeps_its_answers_to_the_chosen_places(
    stack: Both, fake_slack: FakeSlack
) -> None:
    assert "every source" in slash(stack, fake_slack, "scope")
    assert "only ragbot admins" in slash(stack, fake_slack, "scope add files:engineering", ASKER)
    assert "don't know that place" in slash(stack, fake_slack, "scope add jira:ENG")
    added = slash(stack, fake_slack, "scope add files:engineering")
    assert "files:engineering/" in added and "only on" in added

    text, _ = ask_slack(stack, fake_slack, LEAVE_Q)
    assert LEAVE not in text, "the leave policy is outside the channel's scope"
    text, _ = ask_slack(stack, fake_slack, "How do I roll back a bad deploy?")
    assert ROLLBACK in text

    assert "every source" in slash(stack, fake_slack, "scope remove files:engineering/")
    text, _ = ask_slack(stack, fake_slack, LEAVE_Q)
    assert LEAVE in text


def test_a_hidden_document_leaves_every_answer_until_reset(
    stack: Both, fake_slack: FakeSlack, fake_teams: FakeTeams
) -> None:
    assert "only ragbot admins" in slash(stack, fake_slack, f"doc hide {LEAVE_URL}", ASKER)
    assert "Hidden" in slash(stack, fake_slack, f"doc hide <{LEAVE_URL}>")
    assert f"hide: {LEAVE_URL}" in slash(stack, fake_slack, "doc list")
    text, _ = ask_slack(stack, fake_slack, LEAVE_Q)
    assert LEAVE not in text
    # Company-wide: Teams answers without it too, and lists it the same way.
    post = fake_teams.channel_post(LEAVE_Q, T_ASKER, TEAMS_CHANNEL, TEAMS_CHANNEL)
    assert LEAVE not in ask_teams(stack, fake_teams, post)
    listed = teams_says(stack, fake_teams, fake_teams.personal_message("doc list", T_ADMIN))
    assert any(LEAVE_URL in reply for reply in listed)

    assert "own merits" in slash(stack, fake_slack, f"doc reset {LEAVE_URL}")
    assert "No document" in slash(stack, fake_slack, "doc list")
    text, _ = ask_slack(stack, fake_slack, LEAVE_Q)
    assert LEAVE in text
    assert "boost" in slash(stack, fake_slack, "doc boost https://wiki.example/x").lower()
    assert "doc list" in slash(stack, fake_slack, "doc boost not-a-link")
    escaped = slash(stack, fake_slack, "doc bury <https://wiki.example/p?id=1&amp;v=2|Page>")
    assert "https://wiki.example/p?id=1&v=2" in escaped, "Slack's escaped link form is undone"


def test_knowledge_gaps_merge_rewordings_and_count_unanswered_and_unhelpful(
    stack: Both, fake_slack: FakeSlack
) -> None:
    for question in (
        "How do I get a parking permit for the office garage?",
        "How can I get a parking permit for the office garage?",
        "Where do I apply for a parking permit for the office garage?",
    ):
        text, _ = ask_slack(stack, fake_slack, question)
        assert ABSTAIN_EN in text
    text, reply = ask_slack(stack, fake_slack, "How do I roll back a bad deploy?")
    assert ROLLBACK in text
    vote_down(stack, reply)
    vote_down(stack, reply)  # a second click is the same person's same vote

    assert "only ragbot admins" in slash(stack, fake_slack, "gaps", ASKER)
    assert "gaps <days>" in slash(stack, fake_slack, "gaps forever")
    assert "Gathering" in slash(stack, fake_slack, "gaps 7")
    report = wait_for(
        lambda: [r["text"] for r in fake_slack.responses if "Knowledge gaps" in r.get("text", "")],
        60,
        "the gaps report",
    )[-1]
    lines = report.splitlines()
    assert "most asked first" in lines[0]
    (parking,) = [line for line in lines if "parking permit" in line]
    assert "asked 3× (3 unanswered)" in parking and f"<#{CHANNEL}>" in parking
    (rollback,) = [line for line in lines if "roll back" in line]
    assert "asked 1× (1 👎)" in rollback


def test_the_weekly_digest_goes_where_an_admin_asked_for_it(
    stack: Both, fake_slack: FakeSlack, fake_teams: FakeTeams
) -> None:
    assert "only admins read" in slash(stack, fake_slack, "gaps weekly on")
    on = teams_says(stack, fake_teams, fake_teams.personal_message("gaps weekly on", T_ADMIN))
    assert any("Every week" in reply for reply in on)
    broker = Celery(broker=stack.env["REDIS_URL"])
    broker.send_task(jobs.GAPS_DIGEST, queue=jobs.ANSWER_QUEUE)

    def digest_in_slack() -> list[str]:
        return [
            m["text"] for m in fake_slack.bot_messages(CHANNEL) if "Knowledge gaps" in m["text"]
        ]

    assert "parking permit" in wait_for(digest_in_slack, 60, "the Slack digest")[0]
    chat = f"a:1{T_ADMIN.aad}"
    digest = wait_for(
        lambda: [m for m in fake_teams.bot_messages(chat) if "Knowledge gaps" in str(m["text"])],
        60,
        "the Teams digest",
    )
    assert "parking permit" in str(digest[0]["text"])
    assert "No more" in slash(stack, fake_slack, "gaps weekly off")


def test_teams_takes_the_same_commands(stack: Both, fake_teams: FakeTeams) -> None:
    def in_channel(text: str, member: Member = T_ADMIN) -> list[str]:
        post = fake_teams.channel_post(text, member, TEAMS_CHANNEL, TEAMS_CHANNEL)
        return teams_says(stack, fake_teams, post)

    assert "only ragbot admins" in in_channel("scope add files:engineering", T_ASKER)[0]
    assert "files:engineering/" in in_channel("scope add files:engineering")[0]
    post = fake_teams.channel_post(LEAVE_Q, T_ASKER, TEAMS_CHANNEL, TEAMS_CHANNEL)
    assert LEAVE not in ask_teams(stack, fake_teams, post)
    assert "every source" in in_channel("scope remove files:engineering")[0]
    assert "Hidden" in in_channel(f"doc hide {LEAVE_URL}")[0]
    post = fake_teams.channel_post(LEAVE_Q, T_ASKER, TEAMS_CHANNEL, TEAMS_CHANNEL)
    assert LEAVE not in ask_teams(stack, fake_teams, post)
    assert "own merits" in in_channel(f"doc reset {LEAVE_URL}")[0]
    post = fake_teams.channel_post(LEAVE_Q, T_ASKER, TEAMS_CHANNEL, TEAMS_CHANNEL)
    assert LEAVE in ask_teams(stack, fake_teams, post)
    assert "personal chat" in in_channel("gaps")[0], "gaps quote private questions"
    # A question that merely starts like a command is still a question.
    post = fake_teams.channel_post(
        "scope of the leave policy?", T_ASKER, TEAMS_CHANNEL, TEAMS_CHANNEL
    )
    assert "Searching" in teams_says(stack, fake_teams, post)[0]

    scooter = "Where can I charge my electric scooter at the office?"
    post = fake_teams.channel_post(scooter, T_ASKER, TEAMS_CHANNEL, TEAMS_CHANNEL)
    assert "couldn't find" in ask_teams(stack, fake_teams, post)

    replies = teams_says(stack, fake_teams, fake_teams.personal_message("gaps 30", T_ADMIN))
    assert "Gathering" in replies[0]
    conversation = f"a:1{T_ADMIN.aad}"
    report = wait_for(
        lambda: [
            str(m["text"])
            for m in fake_teams.bot_messages(conversation)
            if "Knowledge gaps in the last 30 days" in str(m["text"])
        ],
        60,
        "the Teams gaps report",
    )
    assert "parking permit" in report[-1]
    # The channel by the name its team gives it, not by its id.
    (line,) = [line for line in report[-1].split("\n") if "electric scooter" in line]
    assert 'in Teams channel "General"' in line and TEAMS_CHANNEL not in line
