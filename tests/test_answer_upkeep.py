"""Answers that stay true: when a sync changes what an answer cited, the old answer says so.

End to end: `ragbot serve` (Slack and Teams) and a real worker on real Redis, the fake Slack and
Bot Framework APIs, a docs folder the test edits and `ragbot sync` handing the sync to the
worker, as an admin would run it. Answers are extractive, so a fact shows where it came from.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fakes.slack_api import FakeSlack
from tests.fakes.teams_api import FakeTeams, Member
from tests.processes import free_port, wait_for
from tests.test_channel_audience import APP_ID, Both, both_chats
from tests.test_slack import answer_in, block_text, mention, run_cli

SAM, OPS = "U0SAM", "U0OPS"
T_SAM = Member("29:1sam", "aad-sam", "sam@acme.com", "Sam Park")
TEAM = "19:travel000@thread.tacv2"

TRAVEL_FILLER = " ".join(
    f"Trip rule {n}: book trains over flights below four hours, keep every receipt, and file "
    f"the claim within thirty days of returning from the trip number {n}."
    for n in range(8)
)
EQUIPMENT_FILLER = " ".join(
    f"Equipment rule {n}: laptops are refreshed by IT, peripherals are ordered in the portal, "
    f"and returned devices are wiped before reuse, item {n}."
    for n in range(8)
)
MEAL_Q = "What is the daily meal allowance on business trips?"


def policies(meal: str = "40 euros", monitor: str = "three years") -> str:
    return (
        "# Travel and equipment\n\n## Travel\n\n"
        f"The daily meal allowance on business trips is {meal}. {TRAVEL_FILLER}\n\n"
        "## Equipment\n\n"
        f"Each employee may order one new monitor every {monitor}. {EQUIPMENT_FILLER}\n"
    )


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("upkeep-docs")
    (root / "policies.md").write_text(policies())
    (root / "vpn.md").write_text(
        "# VPN\n\nThe VPN gateway for remote staff is vpn-gw.acme.example on port 4443.\n"
    )
    (root / "facilities").mkdir()
    (root / "facilities" / "badges.md").write_text(
        "# Badges\n\nLost badges are replaced at the front desk on floor 2 within one hour.\n"
    )
    return root


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(users={SAM: "sam@acme.com", OPS: "ops@acme.com"}).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fake_teams() -> Iterator[FakeTeams]:
    fake = FakeTeams(rosters={TEAM: [T_SAM]}, app_id=APP_ID).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(
    docs: Path,
    redis_url: str,
    fake_slack: FakeSlack,
    fake_teams: FakeTeams,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Both]:
    workdir = tmp_path_factory.mktemp("upkeep")
    queue_db = redis_url.rsplit("/", 1)[0] + "/8"
    redis.Redis.from_url(queue_db).flushdb()
    env = (
        {k: v for k, v in os.environ.items()}
        | {
            "REDIS_URL": queue_db,
            "RAGBOT_DATA_DIR": str(workdir / "data"),
            "FILES_PATH": str(docs),
            "RAGBOT_ORG_DOMAINS": "acme.com",
            "RAGBOT_ADMINS": OPS,
        }
        | both_chats(fake_slack, fake_teams)
    )
    running = Both(env, free_port(), workdir)
    try:
        running.start_server()
        running.start_worker()
        # The first sync, once the worker is up to take it.
        wait_for(lambda: run_cli(env, "sync", "files").returncode == 0, 90, "the first sync")
        yield running
    finally:
        running.stop()
        redis.Redis.from_url(queue_db).flushdb()


def sync(stack: Both, *flags: str) -> None:
    """`ragbot sync files` as an admin runs it: the worker syncs, then revisits answers."""
    synced = run_cli(stack.env, "sync", "files", *flags)
    assert synced.returncode == 0, synced.stderr


def ask(stack: Both, fake: FakeSlack, channel: str, question: str) -> str:
    ts = fake.user_says(channel, question, SAM)
    assert stack.post_event(mention(channel, question, ts, user=SAM)).status_code == 200
    answer_in(fake, channel, ts)
    return ts


def thread(fake: FakeSlack, channel: str, ts: str) -> list[str]:
    """The bot's messages in the thread as their text, oldest first."""
    messages = [m for m in fake.bot_messages(channel) if m["thread_ts"] == ts]
    return [block_text(m) for m in sorted(messages, key=lambda m: float(m["ts"]))]


def teams_thread(fake: FakeTeams, activity: dict[str, Any]) -> list[str]:
    replies = fake.bot_messages(activity["conversation"]["id"])
    return [str(m["text"]) for m in replies if m.get("replyToId") == activity["id"]]


def test_an_edit_to_the_cited_fact_brings_one_update_and_marks_the_old_answer(
    stack: Both, fake_slack: FakeSlack, fake_teams: FakeTeams, docs: Path
) -> None:
    ts = ask(stack, fake_slack, "C0TRAVEL", MEAL_Q)
    (answer,) = thread(fake_slack, "C0TRAVEL", ts)
    assert "40 euros" in answer
    in_teams = fake_teams.channel_post(MEAL_Q, T_SAM, TEAM, TEAM)
    assert stack.teams(in_teams, fake_teams).status_code in (200, 202)
    wait_for(lambda: "40 euros" in "".join(teams_thread(fake_teams, in_teams)), 60, "Teams")

    (docs / "policies.md").write_text(policies(monitor="four years"))  # another section
    sync(stack)
    assert thread(fake_slack, "C0TRAVEL", ts) == [answer], "an edit elsewhere changes nothing"

    (docs / "policies.md").write_text(policies(meal="45 euros", monitor="four years"))
    sync(stack)
    old, update = thread(fake_slack, "C0TRAVEL", ts)
    assert "Outdated: Travel and equipment changed on" in old and "40 euros" in old
    assert update.startswith("*Update: Travel and equipment changed on") and "45 euros" in update
    old, update = wait_for(
        lambda: teams_thread(fake_teams, in_teams)[1:] and teams_thread(fake_teams, in_teams),
        10,
        "a Teams update",
    )
    assert "Outdated" in old and "45 euros" in update and "40 euros" not in update

    sync(stack)
    sync(stack, "--full")
    time.sleep(1)
    assert len(thread(fake_slack, "C0TRAVEL", ts)) == 2, "still one update"
    assert len(teams_thread(fake_teams, in_teams)) == 2


def test_a_deleted_source_is_taken_out_of_the_old_answer(
    stack: Both, fake_slack: FakeSlack, docs: Path
) -> None:
    ts = ask(stack, fake_slack, "C0REMOTE", "What is the VPN gateway for remote staff?")
    (answer,) = thread(fake_slack, "C0REMOTE", ts)
    assert "vpn-gw.acme.example" in answer
    (docs / "vpn.md").unlink()
    sync(stack)
    (answer,) = thread(fake_slack, "C0REMOTE", ts)
    assert "vpn-gw.acme.example" not in answer and "VPN" not in answer.split("\n")[-1]
    assert "A source of this answer was removed or restricted on" in answer


def test_a_restricted_source_is_taken_out_of_the_old_answer(
    stack: Both, fake_slack: FakeSlack, docs: Path
) -> None:
    ts = ask(stack, fake_slack, "C0FRONT", "Where are lost badges replaced?")
    (answer,) = thread(fake_slack, "C0FRONT", ts)
    assert "front desk on floor 2" in answer
    (docs / "facilities" / ".acl").write_text("group:files:facilities\n")
    sync(stack, "--full")  # a folder's readers changed: the file itself did not
    (answer,) = thread(fake_slack, "C0FRONT", ts)
    assert "front desk on floor 2" not in answer and "Badges" not in answer
    assert "A source of this answer was removed or restricted on" in answer
    shutil.rmtree(docs / "facilities")
    sync(stack)


def test_a_channel_can_turn_updates_off(stack: Both, fake_slack: FakeSlack, docs: Path) -> None:
    response = stack.command("updates off", OPS, "r-off", fake_slack)
    assert "no longer get an update" in response.text
    channel = "C0GENERAL"  # where the slash command was typed
    ts = ask(stack, fake_slack, channel, MEAL_Q)
    (docs / "policies.md").write_text(policies(meal="50 euros", monitor="four years"))
    sync(stack)
    (answer,) = thread(fake_slack, channel, ts)
    assert "Outdated" not in answer
    assert "only ragbot admins" in stack.command("updates on", SAM, "r-on", fake_slack).text
