"""The leak matrix: a conversation's answer uses only what every member may open.

End to end: `ragbot serve` (Slack and Teams) and a real worker on real Redis, the real Slack and
Bot Framework clients against the fakes, a Confluence index with a space shared with a group.
Answers are extractive (no LLM key), so a fact in an answer shows which page it came from.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from tests.fakes.confluence_api import FakeConfluence, Page, Space
from tests.fakes.slack_api import BOT_USER, FakeSlack
from tests.fakes.teams_api import TENANT, FakeTeams, Member
from tests.processes import free_port, wait_for
from tests.test_slack import (
    SECRET,
    SlackStack,
    answer_in,
    block_text,
    mention,
    metric_value,
    run_cli,
)
from tests.test_teams import final
from workers.delivery.render import PRIVATE_HEADER

APP_ID = "00000000-aaaa-4bbb-8ccc-00000audience"
DAY_AGO = datetime.now(UTC) - timedelta(days=1)

PAYDAY = "25th of each month"  # HR space: the hr group only
FREEZE = "December 18"  # ENG space: every licensed user (the company)
COMMITTEE = "March 3"  # a page restricted to Dana
OFFICE = "8am to 6pm"  # a public space
PAYDAY_Q = "When is payday for salaries?"
PRIVATE_MARK = PRIVATE_HEADER.split(":")[0]  # "Only you can see this"

# Slack: Dana, Sam, Lee and H4-H6 are in the hr group; Kim is not.
DANA, SAM, LEE, KIM = "U0DANA", "U0SAM", "U0LEE", "U0KIM"
H4, H5, H6 = "U0H4", "U0H5", "U0H6"
GUEST, OUTSIDER, GHOST, NO_MAIL = "U0GUEST", "U0OUTSIDER", "U0GHOST", "U0NOMAIL"
OTHER_BOT, GONE = "U0OTHERBOT", "U0GONE"
HR_PEOPLE = {DANA: "dana", SAM: "sam", LEE: "lee", H4: "h4", H5: "h5", H6: "h6"}

# Teams
TEAM = "19:hrteam000@thread.tacv2"
T_DANA = Member("29:1dana", "aad-dana", "dana@acme.com", "Dana Kim")
T_SAM = Member("29:1sam", "aad-sam", "sam@acme.com", "Sam Park")
T_LEE = Member("29:1lee", "aad-lee", "lee@acme.com", "Lee Cho")
T_KIM = Member("29:1kim", "aad-kim", "kim@acme.com", "Kim Ra")
T_GUEST = Member("29:1guest", "aad-guest", "pat@partner.example", "Pat Guest", role="guest")
T_OTHER = Member("29:1other", "aad-other", "ann@other.example", "Ann Other", tenant="other-tenant")
T_NOMAIL = Member("29:1nomail", "aad-nomail", "", "No Mail")


def confluence() -> FakeConfluence:
    accounts = {f"acc-{name}": f"{name}@acme.com" for name in [*HR_PEOPLE.values(), "kim"]}
    fake = FakeConfluence(users=accounts)
    fake.groups = {"hr": [f"acc-{name}" for name in HR_PEOPLE.values()]}
    fake.spaces = {
        "PUB": Space("PUB", "Public", anonymous=True),
        "ENG": Space("ENG", "Engineering"),
        "HR": Space("HR", "People", all_users=False, groups=["hr"]),
    }
    pages = [
        ("1", "PUB", "Office hours", f"The Berlin office is open from {OFFICE} on weekdays.", []),
        (
            "2",
            "ENG",
            "Deploy freeze",
            f"The year-end deploy freeze starts on {FREEZE} and ends on January 4.",
            [],
        ),
        (
            "3",
            "HR",
            "Payroll calendar",
            f"Payday for salaries is the {PAYDAY}. Payslips arrive two days before payday.",
            [],
        ),
        (
            "4",
            "ENG",
            "Promotion committee",
            f"The promotion committee meets on {COMMITTEE} to review nominations.",
            ["acc-dana"],
        ),
    ]
    for page_id, space, title, text, only in pages:
        fake.pages[page_id] = Page(
            page_id, space, title, f"<p>{text}</p>", when=DAY_AGO, restricted_users=only
        )
    return fake.start()


@pytest.fixture(scope="module")
def fake_confluence() -> Iterator[FakeConfluence]:
    fake = confluence()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    users = {uid: f"{name}@acme.com" for uid, name in HR_PEOPLE.items()}
    users |= {
        KIM: "kim@acme.com",
        GUEST: "pat@partner.example",
        OUTSIDER: "ann@other.example",
        NO_MAIL: "",
        OTHER_BOT: "",
        GONE: "old@acme.com",
    }
    fake = FakeSlack(
        users=users,
        guests={GUEST},
        accounts={
            OUTSIDER: {"team_id": "T0OTHERORG"},
            OTHER_BOT: {"is_bot": True},
            GONE: {"deleted": True},
        },
        external_channels={"C0SHARED"},
        members={
            "C0HR": [BOT_USER, DANA, SAM, LEE],
            "C0BIG": [BOT_USER, *HR_PEOPLE],
            "C0BOTS": [BOT_USER, DANA, SAM, OTHER_BOT, GONE],
            "C0GUESTS": [BOT_USER, DANA, SAM, GUEST],
            "C0SHARED": [BOT_USER, DANA, SAM],
            "C0FOREIGN": [BOT_USER, DANA, OUTSIDER],
            "C0GHOST": [BOT_USER, DANA, GHOST],
            "C0NOMAIL": [BOT_USER, DANA, NO_MAIL],
            "C0LOST": [BOT_USER, DANA, SAM],
            "G0HRMPIM": [BOT_USER, DANA, SAM],
            "G0KIMMPIM": [BOT_USER, DANA, KIM],
            "D0DANA": [BOT_USER, DANA],
            "D0KIM": [BOT_USER, KIM],
        },
    ).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fake_teams() -> Iterator[FakeTeams]:
    rosters = {
        TEAM: [T_DANA, T_SAM, T_LEE],
        "19:guests000@thread.tacv2": [T_DANA, T_SAM, T_GUEST],
        "19:other0000@thread.tacv2": [T_DANA, T_OTHER],
        "19:nomail000@thread.tacv2": [T_DANA, T_NOMAIL],
        "19:hrchat@thread.v2": [T_DANA, T_SAM],
        "19:kimchat@thread.v2": [T_DANA, T_KIM],
    }
    rosters |= {f"a:1{m.aad}": [m] for m in (T_DANA, T_KIM)}
    fake = FakeTeams(rosters=rosters, app_id=APP_ID).start()
    yield fake
    fake.stop()


def both_chats(fake_slack: FakeSlack, fake_teams: FakeTeams) -> dict[str, str]:
    """The environment that points one `ragbot serve` at the fake Slack and Teams APIs."""
    return {
        "RAGBOT_SYNC_INTERVAL_SECONDS": "3600",
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        # Far more questions a minute than people ask: fair use is tested on its own.
        "RAGBOT_QUESTIONS_PER_MINUTE": "100000",
        "RAGBOT_CONVERSATION_QUESTIONS_PER_MINUTE": "100000",
        "SLACK_API_URL": fake_slack.api_url,
        "MICROSOFT_APP_ID": APP_ID,
        "MICROSOFT_APP_PASSWORD": fake_teams.app_password,
        "MICROSOFT_APP_TENANT_ID": TENANT,
        "MICROSOFT_OPENID_METADATA_URL": fake_teams.metadata_url,
        "MICROSOFT_LOGIN_URL": fake_teams.url,
    }


class Both(SlackStack):
    def teams(self, activity: dict[str, Any], fake: FakeTeams) -> httpx.Response:
        headers = {"Authorization": f"Bearer {fake.sign()}"}
        return httpx.post(self.url + "/api/messages", json=activity, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def stack(
    redis_url: str,
    fake_confluence: FakeConfluence,
    fake_slack: FakeSlack,
    fake_teams: FakeTeams,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Both]:
    from workers.runtime import Runtime
    from workers.settings import Settings

    workdir = tmp_path_factory.mktemp("audience")
    confluence_env = {
        "CONFLUENCE_URL": fake_confluence.url,
        "CONFLUENCE_USERNAME": fake_confluence.email,
        "CONFLUENCE_API_TOKEN": fake_confluence.token,
    }
    data_dir = workdir / "data"
    queue_db = redis_url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(queue_db).flushdb()
    settings = Settings(
        ragbot_data_dir=data_dir,
        redis_url=queue_db,  # the sync state (with group memberships) lives with the workers'
        confluence_url=fake_confluence.url,
        confluence_username=fake_confluence.email,
        confluence_api_token=fake_confluence.token,
        ragbot_org_domains=["acme.com"],
    )
    with Runtime(settings) as runtime:  # group memberships are read by a pruning sync
        runtime.syncer().sync(runtime.connector("confluence"), prune=True)
    env = (
        {k: v for k, v in os.environ.items()}
        | confluence_env
        | {
            "REDIS_URL": queue_db,
            "RAGBOT_DATA_DIR": str(data_dir),
            "RAGBOT_ORG_DOMAINS": "acme.com",
            "RAGBOT_CHANNEL_MAX_MEMBERS": "5",
        }
        | both_chats(fake_slack, fake_teams)
    )
    running = Both(env, free_port(), workdir)
    try:
        running.start_server()
        running.start_worker()
        yield running
    finally:
        running.stop()
        redis.Redis.from_url(queue_db).flushdb()


# -- Slack ----------------------------------------------------------------------------------


def ask_slack(
    stack: Both, fake: FakeSlack, channel: str, question: str, user: str = DANA
) -> tuple[str, str]:
    """The answer's text (sections and context lines) and the question's thread."""
    ts = fake.user_says(channel, question, user)
    if channel.startswith("D"):
        event = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": question,
            "ts": ts,
            "channel_type": "im",
        }
    else:
        event = mention(channel, question, ts, user=user)
        event["channel_type"] = "mpim" if channel.startswith("G") else "group"
    assert stack.post_event(event).status_code == 200
    return block_text(answer_in(fake, channel, ts)), ts


def membership_event(stack: Both, kind: str, channel: str, user: str) -> None:
    event = {"type": kind, "user": user, "channel": channel, "channel_type": "G", "team": "T0001"}
    assert stack.post_event(event).status_code == 200


def whispers(fake: FakeSlack, channel: str, ts: str, settle: float = 1.5) -> list[dict[str, Any]]:
    """Ephemeral replies in the question's thread (after the task had time to send one)."""
    time.sleep(settle)
    return [e for e in fake.ephemerals if e["channel"] == channel and e["thread_ts"] == ts]


def test_a_channel_whose_members_all_may_read_a_group_page_is_answered_from_it(
    stack: Both, fake_slack: FakeSlack
) -> None:
    text, ts = ask_slack(stack, fake_slack, "C0HR", PAYDAY_Q)
    assert PAYDAY in text
    assert "Answered from documents everyone in <#C0HR> can open" in text
    assert whispers(fake_slack, "C0HR", ts) == [], "nothing only the asker may read helped"


def test_a_member_who_may_not_read_it_joins_and_it_is_no_longer_used(
    stack: Both, fake_slack: FakeSlack
) -> None:
    ask_slack(stack, fake_slack, "C0HR", PAYDAY_Q)  # the members are cached
    fake_slack.members["C0HR"].append(KIM)
    membership_event(stack, "member_joined_channel", "C0HR", KIM)
    text, ts = ask_slack(stack, fake_slack, "C0HR", PAYDAY_Q)
    assert PAYDAY not in text
    # Dana may read it: she alone is told, in the thread, and Kim sees nothing of it.
    (private,) = wait_for(lambda: whispers(fake_slack, "C0HR", ts, 0.2), 20, "a private add-on")
    assert private["user"] == DANA and PAYDAY in block_text(private)
    assert PRIVATE_MARK in block_text(private)
    text, ts = ask_slack(stack, fake_slack, "C0HR", PAYDAY_Q, user=KIM)
    assert PAYDAY not in text and whispers(fake_slack, "C0HR", ts) == [], "Kim may not read it"

    fake_slack.members["C0HR"].remove(KIM)
    membership_event(stack, "member_left_channel", "C0HR", KIM)
    text, _ = ask_slack(stack, fake_slack, "C0HR", PAYDAY_Q)
    assert PAYDAY in text, "used again once Kim has left"


@pytest.mark.parametrize(
    ("channel", "why"),
    [
        ("C0GUESTS", "guests are in this conversation"),
        ("C0SHARED", "people from another organisation"),
        ("C0FOREIGN", "people from another organisation"),
        ("C0GHOST", "could not be identified"),
        ("C0NOMAIL", "could not be identified"),
    ],
)
def test_guests_outsiders_and_unknown_members_get_public_documents_only(
    stack: Both, fake_slack: FakeSlack, channel: str, why: str
) -> None:
    text, _ = ask_slack(stack, fake_slack, channel, "When does the deploy freeze start?")
    assert FREEZE not in text, "not even company-wide documents"
    assert "Answered from public documents only" in text and why in text
    text, _ = ask_slack(stack, fake_slack, channel, "When is the Berlin office open?")
    assert OFFICE in text, "public documents still answer"


def test_members_the_platform_will_not_list_fail_closed(
    stack: Both, fake_slack: FakeSlack, fake_teams: FakeTeams
) -> None:
    fake_slack.member_errors["C0NOSCOPE"] = "missing_scope"
    text, ts = ask_slack(stack, fake_slack, "C0NOSCOPE", "When does the deploy freeze start?")
    assert FREEZE not in text and "could not be identified" in text
    assert len([m for m in fake_slack.bot_messages("C0NOSCOPE") if m["thread_ts"] == ts]) == 1
    unknown = "19:noroster00@thread.tacv2"  # the connector answers 404 for its roster
    post = fake_teams.channel_post("When does the deploy freeze start?", T_DANA, unknown, unknown)
    text = ask_teams(stack, fake_teams, post)
    assert FREEZE not in text and "could not be identified" in text


def test_bots_and_deactivated_accounts_do_not_narrow_the_view(
    stack: Both, fake_slack: FakeSlack
) -> None:
    text, _ = ask_slack(stack, fake_slack, "C0BOTS", PAYDAY_Q)
    assert PAYDAY in text


def test_channels_over_the_size_limit_get_company_wide_documents(
    stack: Both, fake_slack: FakeSlack
) -> None:
    text, _ = ask_slack(stack, fake_slack, "C0BIG", PAYDAY_Q)  # six members, all in hr
    assert PAYDAY not in text and "Answered from company-wide documents" in text
    text, _ = ask_slack(stack, fake_slack, "C0BIG", "When does the deploy freeze start?")
    assert FREEZE in text


def test_group_dms_follow_the_same_rule(stack: Both, fake_slack: FakeSlack) -> None:
    text, _ = ask_slack(stack, fake_slack, "G0HRMPIM", PAYDAY_Q)
    assert PAYDAY in text
    # Slack would show a link to a group DM as its "mpdm-…" name: it is named in words.
    assert "Answered from documents everyone in this group DM can open" in text
    assert "<#G0HRMPIM>" not in text
    text, ts = ask_slack(stack, fake_slack, "G0KIMMPIM", PAYDAY_Q)
    assert PAYDAY not in text
    (private,) = wait_for(lambda: whispers(fake_slack, "G0KIMMPIM", ts, 0.2), 20, "add-on")
    assert private["user"] == DANA and PAYDAY in block_text(private)
    assert "Not everyone in this group DM can open them" in block_text(private)


def test_a_dm_keeps_its_one_reader(stack: Both, fake_slack: FakeSlack) -> None:
    question = "When does the promotion committee meet?"
    text, _ = ask_slack(stack, fake_slack, "D0DANA", question)
    assert COMMITTEE in text and "Answered from" not in text
    text, _ = ask_slack(stack, fake_slack, "D0KIM", question, user=KIM)
    assert COMMITTEE not in text
    text, _ = ask_slack(stack, fake_slack, "D0KIM", PAYDAY_Q, user=KIM)
    assert PAYDAY not in text


def test_what_only_the_asker_may_read_is_never_in_a_channel_message(
    stack: Both, fake_slack: FakeSlack
) -> None:
    question = "When does the promotion committee meet?"
    text, ts = ask_slack(stack, fake_slack, "C0HR", question)
    assert COMMITTEE not in text and "Promotion committee" not in text
    (private,) = wait_for(lambda: whispers(fake_slack, "C0HR", ts, 0.2), 20, "add-on")
    assert private["user"] == DANA and COMMITTEE in block_text(private)
    # Across every channel this module has used: no message anyone else can see carries the
    # add-on or Dana's page, and every add-on went to the person who asked.
    for channel, messages in fake_slack.messages.items():
        if channel.startswith("D0DANA"):
            continue
        for message in messages:
            seen = f"{message.get('text', '')}\n{block_text(message)}"
            assert COMMITTEE not in seen and PRIVATE_MARK not in seen, (channel, seen)
    for whisper in fake_slack.ephemerals:
        asked = [
            m for m in fake_slack.messages[whisper["channel"]] if m["ts"] == whisper["thread_ts"]
        ]
        assert asked and asked[0]["user"] == whisper["user"]


# -- Teams ----------------------------------------------------------------------------------


def ask_teams(stack: Both, fake: FakeTeams, activity: dict[str, Any]) -> str:
    assert stack.teams(activity, fake).status_code in (200, 202)
    conversation = activity["conversation"]["id"]

    def done() -> dict[str, Any] | None:
        for message in fake.bot_messages(conversation):
            if message.get("replyToId") == activity["id"] and final(message):
                return message
        return None

    return str(wait_for(done, 60, f"an answer in {conversation}")["text"])


def private_chat(fake: FakeTeams, member: Member) -> list[str]:
    return [str(m.get("text")) for m in fake.bot_messages(fake.personal_chat(member.id))]


def test_a_teams_channel_is_answered_from_what_its_team_may_read(
    stack: Both, fake_teams: FakeTeams
) -> None:
    text = ask_teams(stack, fake_teams, fake_teams.channel_post(PAYDAY_Q, T_DANA, TEAM, TEAM))
    assert PAYDAY in text and "everyone in this channel can open" in text

    fake_teams.rosters[TEAM].append(T_KIM)
    update = fake_teams.members_changed(TEAM, added=[T_KIM], team=TEAM)
    assert stack.teams(update, fake_teams).status_code in (200, 202)
    text = ask_teams(stack, fake_teams, fake_teams.channel_post(PAYDAY_Q, T_DANA, TEAM, TEAM))
    assert PAYDAY not in text
    # Dana alone is told, in her personal chat with the bot.
    (private,) = wait_for(lambda: private_chat(fake_teams, T_DANA), 20, "a private message")
    assert PAYDAY in private and PRIVATE_MARK in private
    assert [c["members"][0]["id"] for c in fake_teams.chats_created] == [T_DANA.id]
    for conversation in list(fake_teams.posted):
        if not conversation.startswith("a:"):  # every channel and group chat
            for activity in fake_teams.bot_messages(conversation):
                assert PRIVATE_MARK not in str(activity.get("text")), conversation

    fake_teams.rosters[TEAM].remove(T_KIM)
    update = fake_teams.members_changed(TEAM, removed=[T_KIM], team=TEAM)
    assert stack.teams(update, fake_teams).status_code in (200, 202)
    text = ask_teams(stack, fake_teams, fake_teams.channel_post(PAYDAY_Q, T_DANA, TEAM, TEAM))
    assert PAYDAY in text


@pytest.mark.parametrize(
    ("channel", "why"),
    [
        ("19:guests000@thread.tacv2", "guests are in this conversation"),
        ("19:other0000@thread.tacv2", "people from another organisation"),
        ("19:nomail000@thread.tacv2", "could not be identified"),
    ],
)
def test_teams_guests_other_tenants_and_unknown_members_get_public_documents_only(
    stack: Both, fake_teams: FakeTeams, channel: str, why: str
) -> None:
    post = fake_teams.channel_post("When does the deploy freeze start?", T_DANA, channel, channel)
    text = ask_teams(stack, fake_teams, post)
    assert FREEZE not in text and why in text
    assert "Answered from public documents only" in text


def test_teams_group_chats_follow_the_same_rule(stack: Both, fake_teams: FakeTeams) -> None:
    text = ask_teams(
        stack, fake_teams, fake_teams.group_chat_message(PAYDAY_Q, T_SAM, "19:hrchat@thread.v2")
    )
    assert PAYDAY in text and "everyone in this chat can open" in text
    text = ask_teams(
        stack, fake_teams, fake_teams.group_chat_message(PAYDAY_Q, T_KIM, "19:kimchat@thread.v2")
    )
    assert PAYDAY not in text


def test_a_teams_personal_chat_keeps_its_one_reader(stack: Both, fake_teams: FakeTeams) -> None:
    question = "When does the promotion committee meet?"
    text = ask_teams(stack, fake_teams, fake_teams.personal_message(question, T_DANA))
    assert COMMITTEE in text and "Answered from" not in text
    text = ask_teams(stack, fake_teams, fake_teams.personal_message(question, T_KIM))
    assert COMMITTEE not in text


def test_unidentified_members_are_counted(stack: Both) -> None:
    metrics = httpx.get(stack.url + "/metrics", timeout=5).text
    series = 'ragbot_answer_views_total{reason="unresolved",scope="public"}'
    assert (metric_value(metrics, series) or 0) >= 3  # two in Slack, one in Teams


def test_a_private_add_on_is_sent_once_when_the_task_runs_again(
    stack: Both, fake_slack: FakeSlack, fake_teams: FakeTeams, redis_url: str
) -> None:
    from workers.delivery.slack import SlackDelivery, SlackThread, make_web_client
    from workers.delivery.slack_question import SlackQuestion
    from workers.delivery.teams import TeamsDelivery, TeamsThread
    from workers.delivery.teams_question import TeamsQuestion
    from workers.kv import RedisKeyValue
    from workers.rag.answer import Answer, SourceRef
    from workers.settings import Settings

    kv = RedisKeyValue(redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/11"))
    source = SourceRef(1, "Payroll calendar", "https://wiki/3", "confluence", DAY_AGO, "c:3")
    answer = Answer(f"Payday is the {PAYDAY} [1].", False, [source])

    ts = fake_slack.user_says("C0HR", PAYDAY_Q, DANA)
    question = SlackQuestion("T0001", "C0HR", DANA, PAYDAY_Q, ts, ts, False)
    slack = SlackThread(
        question, SlackDelivery(make_web_client(fake_slack.token, fake_slack.api_url), kv)
    )
    slack.post_private(answer)
    slack.post_private(answer)  # a redelivered task
    assert len(whispers(fake_slack, "C0HR", ts, 0)) == 1

    activity = fake_teams.channel_post(PAYDAY_Q, T_LEE, TEAM, TEAM)
    settings = Settings(
        **{k.lower(): v for k, v in stack.env.items() if k.startswith("MICROSOFT_")}
    )
    teams = TeamsThread(
        TeamsQuestion(
            service_url=fake_teams.service_url,
            tenant_id=TENANT,
            conversation_id=activity["conversation"]["id"],
            conversation_type="channel",
            activity_id=activity["id"],
            user_id=T_LEE.id,
            user_aad_id=T_LEE.aad,
            bot_id="28:ragbot-app",
            bot_name="ragbot",
            text=PAYDAY_Q,
        ),
        TeamsDelivery(settings, kv),
    )
    teams.post_private(answer)
    teams.post_private(answer)
    (message,) = fake_teams.bot_messages(fake_teams.personal_chat(T_LEE.id))
    assert PAYDAY in str(message["text"]) and message.get("edits") == 1, "edited, not re-posted"


def test_an_add_on_that_cannot_be_delivered_leaves_the_answer_alone(
    stack: Both, fake_teams: FakeTeams
) -> None:
    from tests.fakes.teams_api import TeamsFault

    activity = fake_teams.group_chat_message(PAYDAY_Q, T_DANA, "19:kimchat@thread.v2")
    assert stack.teams(activity, fake_teams).status_code in (200, 202)  # placeholder posted
    fake_teams.faults.append(TeamsFault("POST", 403))  # no personal chat with Dana allowed
    chat_before = len(private_chat(fake_teams, T_DANA))

    def answered() -> list[dict[str, Any]]:
        replies = fake_teams.bot_messages("19:kimchat@thread.v2")
        return [m for m in replies if m.get("replyToId") == activity["id"] and m.get("edits")]

    (answer,) = wait_for(answered, 60, "the answer")
    time.sleep(1.5)
    assert not fake_teams.faults, "the add-on was attempted"
    assert PAYDAY not in str(answer["text"])
    replies = [
        m
        for m in fake_teams.bot_messages("19:kimchat@thread.v2")
        if m.get("replyToId") == activity["id"]
    ]
    assert len(replies) == 1, "no apology in the chat: the answer itself was delivered"
    assert len(private_chat(fake_teams, T_DANA)) == chat_before


def test_an_answer_citing_a_page_restricted_later_loses_the_quote(
    stack: Both, fake_slack: FakeSlack, fake_confluence: FakeConfluence
) -> None:
    """Answers that stay true, with Confluence: the readers of a cited page narrow."""
    text, ts = ask_slack(stack, fake_slack, "C0HR", "When does the deploy freeze start?")
    assert FREEZE in text
    fake_confluence.pages["2"].restricted_users = ["acc-dana"]
    synced = run_cli(stack.env, "sync", "confluence", "--full")
    assert synced.returncode == 0, synced.stderr
    (answer,) = [m for m in fake_slack.bot_messages("C0HR") if m["thread_ts"] == ts]
    assert FREEZE not in block_text(answer) and "removed or restricted" in block_text(answer)


# -- staleness bounds and the setting (a worker with other settings) --------------------------


def test_a_lost_event_is_caught_by_the_ttl_and_the_add_on_can_be_turned_off(
    stack: Both, fake_slack: FakeSlack
) -> None:
    stack.kill_worker()
    stack.env |= {"RAGBOT_MEMBERSHIP_TTL_SECONDS": "3", "RAGBOT_PRIVATE_ADDON": "false"}
    stack.start_worker()
    text, _ = ask_slack(stack, fake_slack, "C0LOST", PAYDAY_Q)
    assert PAYDAY in text
    fake_slack.members["C0LOST"].append(KIM)  # Kim joins; the event never arrives
    time.sleep(3.5)
    text, ts = ask_slack(stack, fake_slack, "C0LOST", PAYDAY_Q)
    assert PAYDAY not in text, "the members were read again after the TTL"
    assert whispers(fake_slack, "C0LOST", ts) == [], "the add-on is off"
