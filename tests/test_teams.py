"""Teams end to end: signed Bot Framework activities into `ragbot serve`, a real Celery worker on
real Redis, the Agents SDK's connector client against a fake Bot Framework connector, answers
from the handbook through a fake OpenAI-compatible LLM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import HANDBOOK
from tests.fakes.openai_api import FakeOpenAI, cite_first_source
from tests.fakes.teams_api import TENANT, FakeTeams, Member, TeamsFault
from tests.processes import RAGBOT, Stack, free_port, wait_for
from tests.test_slack import long_reply

APP_ID = "00000000-aaaa-4bbb-8ccc-0000000ragbot"
GENERAL = "19:general0000@thread.tacv2"
PARTNERS = "19:partners000@thread.tacv2"
SAM = Member("29:1sam", "aad-sam", "sam@acme.com", "Sam Park")
DANA = Member("29:1dana", "aad-dana", "dana@acme.com", "Dana Kim")
OPS = Member("29:1ops", "aad-ops", "ops@acme.com", "Ops Lead")
GUEST = Member("29:1guest", "aad-guest", "pat@partner.example", "Pat Guest", role="guest")


class TeamsStack(Stack):
    def post(
        self, activity: dict[str, Any], fake: FakeTeams, token: str | None = "sign"
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token == "sign":
            token = fake.sign()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.url + "/api/messages", json=activity, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def fake_teams() -> Iterator[FakeTeams]:
    rosters = {GENERAL: [SAM, DANA, OPS], PARTNERS: [SAM, GUEST]}
    rosters |= {f"a:1{m.aad}": [m] for m in (SAM, DANA, OPS)}
    fake = FakeTeams(rosters=rosters, app_id=APP_ID).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def teams_env(fake: FakeTeams, data_dir: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items()} | {
        "MICROSOFT_APP_ID": APP_ID,
        # Far more questions a minute than people ask: fair use is tested on its own.
        "RAGBOT_QUESTIONS_PER_MINUTE": "100000",
        "RAGBOT_CONVERSATION_QUESTIONS_PER_MINUTE": "100000",
        "MICROSOFT_APP_PASSWORD": fake.app_password,
        "MICROSOFT_APP_TENANT_ID": TENANT,
        "MICROSOFT_OPENID_METADATA_URL": fake.metadata_url,
        "MICROSOFT_LOGIN_URL": fake.url,
        "RAGBOT_DATA_DIR": str(data_dir),
        "FILES_PATH": str(HANDBOOK),
        "RAGBOT_ORG_DOMAINS": "acme.com",
        "RAGBOT_ADMINS": f"{OPS.email},aad-someone-else",
    }


@pytest.fixture(scope="module")
def stack(
    handbook_data_dir: Path,
    redis_url: str,
    fake_teams: FakeTeams,
    fake_llm: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TeamsStack]:
    workdir = tmp_path_factory.mktemp("teams")
    data_dir = workdir / "data"
    shutil.copytree(handbook_data_dir, data_dir)
    queue_db = redis_url.rsplit("/", 1)[0] + "/13"
    redis.Redis.from_url(queue_db).flushdb()
    env = teams_env(fake_teams, data_dir) | {
        "REDIS_URL": queue_db,
        "OPENAI_API_KEY": fake_llm.api_key,
        "OPENAI_BASE_URL": fake_llm.base_url,
        "RAGBOT_TASK_VISIBILITY_SECONDS": "8",
        "RAGBOT_LLM_TIMEOUT_SECONDS": "5",
    }
    running = TeamsStack(env, free_port(), workdir)
    running.start_server()
    running.start_worker()
    yield running
    running.stop()
    redis.Redis.from_url(queue_db).flushdb()


def final(message: dict[str, Any]) -> bool:
    """The placeholder replaced by the answer (not by a preview of the text so far, which ends
    in "…"), or a streamed answer closed with its final text."""
    edited = bool(message.get("edits")) and not str(message.get("text")).endswith("…")
    return edited or message.get("streaming") is False


def answer_to(fake: FakeTeams, activity: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """The bot's reply to the activity once the placeholder has been replaced."""
    conversation = activity["conversation"]["id"]

    def done() -> dict[str, Any] | None:
        for message in fake.bot_messages(conversation):
            if message.get("replyToId") == activity["id"] and final(message):
                return message
        return None

    return wait_for(done, timeout, f"an answer in {conversation}")


def citations(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for e in message.get("entities") or [] for c in e.get("citation") or []]


def test_a_channel_mention_gets_one_threaded_answer_with_citations(
    stack: TeamsStack, fake_teams: FakeTeams
) -> None:
    activity = fake_teams.channel_post("How long is parental leave?", SAM, GENERAL, GENERAL)
    thread = activity["conversation"]["id"]
    assert ";messageid=" in thread and ":" in thread
    started = time.perf_counter()
    assert stack.post(activity, fake_teams).status_code in (200, 202)
    assert time.perf_counter() - started < 5
    reply = answer_to(fake_teams, activity)
    assert "[1]" in reply["text"] and "**Sources**" in reply["text"]
    assert "Leave Policy" in reply["text"] and "updated" in reply["text"]
    (first, *_) = citations(reply)
    assert first["position"] == 1
    assert first["appearance"]["name"] and "updated" in first["appearance"]["abstract"]
    assert reply["channelData"] == {"feedbackLoopEnabled": True}
    assert reply["replyToId"] == activity["id"]
    assert len(fake_teams.bot_messages(thread)) == 1
    assert fake_teams.tokens_issued >= 1


def test_unsigned_and_forged_requests_are_refused(stack: TeamsStack, fake_teams: FakeTeams) -> None:
    def activity() -> dict[str, Any]:
        return fake_teams.channel_post("What is the hotel limit?", SAM, GENERAL, GENERAL)

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = [
        stack.post(activity(), fake_teams, token=None),
        stack.post(activity(), fake_teams, token="not-a-jwt"),
        stack.post(activity(), fake_teams, token=fake_teams.sign(key=other_key)),
        stack.post(activity(), fake_teams, token=fake_teams.sign({"aud": "someone-else"})),
        stack.post(activity(), fake_teams, token=fake_teams.sign({"exp": int(time.time()) - 900})),
        stack.post(activity(), fake_teams, token=fake_teams.sign({"serviceurl": "https://evil/"})),
    ]
    assert [r.status_code for r in refused] == [401] * len(refused)
    time.sleep(1)
    assert not any("hotel" in json.dumps(m) for ms in fake_teams.posted.values() for m in ms)


def test_malformed_activities_get_400(stack: TeamsStack, fake_teams: FakeTeams) -> None:
    headers = {"Authorization": f"Bearer {fake_teams.sign()}", "Content-Type": "application/json"}
    url = stack.url + "/api/messages"
    assert httpx.post(url, content="{not json", headers=headers).status_code == 400
    assert httpx.post(url, json=["a list"], headers=headers).status_code == 400
    assert httpx.post(url, json={"type": "message"}, headers=headers).status_code == 400
    no_service = fake_teams.personal_message("hi", SAM)
    del no_service["serviceUrl"]
    assert httpx.post(url, json=no_service, headers=headers).status_code == 400


def test_redelivered_activities_answer_once(stack: TeamsStack, fake_teams: FakeTeams) -> None:
    activity = fake_teams.channel_post(
        "How many days do I have to submit an expense?", SAM, GENERAL, GENERAL
    )
    for _ in range(3):
        assert stack.post(activity, fake_teams).status_code in (200, 202)
    thread = activity["conversation"]["id"]
    answer_to(fake_teams, activity)
    time.sleep(2)
    assert len(fake_teams.bot_messages(thread)) == 1


def test_restricted_documents_reach_a_personal_chat_but_never_a_channel(
    stack: TeamsStack, fake_teams: FakeTeams
) -> None:
    question = "What is the salary range for a Staff Engineer?"
    in_channel = fake_teams.channel_post(question, DANA, GENERAL, GENERAL)
    stack.post(in_channel, fake_teams)
    reply = answer_to(fake_teams, in_channel)
    assert "Salary Bands" not in reply["text"] and "couldn't find" in reply["text"]

    personal = fake_teams.personal_message(question, DANA)
    stack.post(personal, fake_teams)
    private = answer_to(fake_teams, personal)
    assert "Salary Bands" in private["text"]
    assert "feedbackLoopEnabled" in json.dumps(private)


def test_a_channel_with_guests_sees_only_public_documents(
    stack: TeamsStack, fake_teams: FakeTeams
) -> None:
    question = "How do I roll back a production deploy?"
    with_guest = fake_teams.channel_post(question, SAM, PARTNERS, PARTNERS)
    stack.post(with_guest, fake_teams)
    assert "Deploying Services" not in answer_to(fake_teams, with_guest)["text"]
    internal = fake_teams.channel_post(question, SAM, GENERAL, GENERAL)
    stack.post(internal, fake_teams)
    assert "Deploying Services" in answer_to(fake_teams, internal)["text"]


def test_throttled_connector_calls_are_retried(stack: TeamsStack, fake_teams: FakeTeams) -> None:
    fake_teams.faults += [TeamsFault("PUT", 429, retry_after="1"), TeamsFault("PUT", 502)]
    activity = fake_teams.channel_post("What is the hotel limit per night?", SAM, GENERAL, GENERAL)
    stack.post(activity, fake_teams)
    reply = answer_to(fake_teams, activity)
    assert "Travel and Expense Policy" in reply["text"]
    assert not fake_teams.faults


def test_admin_commands_are_for_admins(stack: TeamsStack, fake_teams: FakeTeams) -> None:
    refused = fake_teams.channel_post("status", SAM, GENERAL, GENERAL)
    stack.post(refused, fake_teams)
    thread = refused["conversation"]["id"]
    wait_for(lambda: fake_teams.bot_messages(thread), 10, "a refusal")
    assert "only ragbot admins" in fake_teams.bot_messages(thread)[0]["text"]

    accepted = fake_teams.personal_message("status", OPS)
    stack.post(accepted, fake_teams)
    chat = accepted["conversation"]["id"]
    report = wait_for(
        lambda: [m for m in fake_teams.bot_messages(chat) if "files" in m["text"]],
        60,
        "the status report",
    )
    assert "Checking the sources" in fake_teams.bot_messages(chat)[0]["text"]
    assert "documents" in report[-1]["text"]

    helped = fake_teams.personal_message("help", SAM)
    stack.post(helped, fake_teams)
    wait_for(
        lambda: any(
            "Ask me about our docs" in m["text"]
            for m in fake_teams.bot_messages(helped["conversation"]["id"])
        ),
        10,
        "help",
    )


def test_edits_deletions_and_the_bots_own_messages_are_ignored(
    stack: TeamsStack, fake_teams: FakeTeams
) -> None:
    edit = fake_teams.channel_post("How long is parental leave?", SAM, GENERAL, GENERAL)
    edit["type"] = "messageUpdate"
    deletion = fake_teams.channel_post("How long is parental leave?", SAM, GENERAL, GENERAL)
    deletion["type"] = "messageDelete"
    own = fake_teams.channel_post("How long is parental leave?", SAM, GENERAL, GENERAL)
    own["from"] = {"id": own["recipient"]["id"], "name": "ragbot"}
    for activity in (edit, deletion, own):
        assert stack.post(activity, fake_teams).status_code in (200, 202)
    time.sleep(2)
    for activity in (edit, deletion, own):
        assert fake_teams.bot_messages(activity["conversation"]["id"]) == []


def test_feedback_is_recorded(stack: TeamsStack, fake_teams: FakeTeams) -> None:
    activity = fake_teams.personal_message("When are laptops replaced?", SAM)
    stack.post(activity, fake_teams)
    reply = answer_to(fake_teams, activity)
    invoke = fake_teams.personal_message("", SAM) | {
        "type": "invoke",
        "name": "message/submitAction",
        "replyToId": reply["id"],
        "value": {
            "actionName": "feedback",
            "actionValue": {"reaction": "like", "feedback": '{"feedbackText":"spot on"}'},
        },
    }
    response = stack.post(invoke, fake_teams)
    assert response.status_code == 200
    records = redis.Redis.from_url(stack.env["REDIS_URL"]).lrange("ragbot:feedback", 0, -1)
    record = json.loads(records[-1])
    assert record["vote"] == "up" and record["comment"] == "spot on"
    assert record["question_id"].endswith(activity["id"]) and record["answer"]["sources"]
    assert (
        'ragbot_feedback_total{platform="teams",vote="up"} 1.0'
        in httpx.get(stack.url + "/metrics").text
    )


@pytest.fixture
def emulator_stack(
    stack: TeamsStack, fake_teams: FakeTeams, tmp_path: Path
) -> Iterator[tuple[TeamsStack, Path]]:
    """The emulator setup: no app id, no Redis; the front door runs the tasks itself."""
    data_dir = tmp_path / "data"
    shutil.copytree(Path(stack.env["RAGBOT_DATA_DIR"]), data_dir)
    env = {
        k: v
        for k, v in stack.env.items()
        if k not in ("REDIS_URL", "MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD")
    }
    env["RAGBOT_DATA_DIR"] = str(data_dir)
    env["RAGBOT_TEAMS_DEV"] = "1"
    log = tmp_path / "serve.log"
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [RAGBOT, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    alone = TeamsStack(env, port, tmp_path)
    alone.server = server
    fake_teams.app_id = None  # the emulator's connector takes no token either
    try:
        wait_for(alone._healthy, 30, "the front door")
        yield alone, log
    finally:
        fake_teams.app_id = APP_ID
        fake_teams.faults.clear()
        alone.stop()


def test_development_mode_takes_local_unauthenticated_requests_and_says_so(
    emulator_stack: tuple[TeamsStack, Path], fake_teams: FakeTeams
) -> None:
    alone, log = emulator_stack
    assert "Teams DEVELOPMENT MODE" in log.read_text()
    activity = fake_teams.personal_message("How do I roll back a production deploy?", SAM)
    assert alone.post(activity, fake_teams, token=None).status_code in (200, 202)
    assert "Deploying Services" in answer_to(fake_teams, activity)["text"]
    remote = fake_teams.personal_message("How long is parental leave?", SAM)
    remote["serviceUrl"] = "https://smba.example.net/amer/"
    assert alone.post(remote, fake_teams, token=None).status_code == 401


def test_when_the_answer_cannot_be_posted_the_asker_gets_an_apology(
    emulator_stack: tuple[TeamsStack, Path], fake_teams: FakeTeams
) -> None:
    """Every edit of the placeholder is refused: the preview of the text as it is written
    (one attempt: a preview is best effort) and the answer, through all of the task's retries."""
    alone, _ = emulator_stack
    fake_teams.faults += [TeamsFault("PUT", 403) for _ in range(1 + 5)]
    activity = fake_teams.channel_post("How many paid sick days do I get?", SAM, GENERAL, GENERAL)
    alone.post(activity, fake_teams, token=None)
    conversation = activity["conversation"]["id"]

    def apology() -> list[dict[str, Any]]:
        return [
            m
            for m in fake_teams.bot_messages(conversation)
            if m.get("replyToId") == activity["id"] and "went wrong" in m["text"]
        ]

    wait_for(apology, 90, "the apology")  # after retries 2 + 4 + 8 + 16 s apart
    assert not fake_teams.faults, "the task retried before giving up"
    replies = [m for m in fake_teams.bot_messages(conversation) if m["replyToId"] == activity["id"]]
    assert replies[0]["text"].startswith("Searching"), "the placeholder is left as it was"


def test_a_mention_in_an_answered_thread_carries_the_thread_so_far(
    stack: TeamsStack, fake_teams: FakeTeams, fake_llm: FakeOpenAI
) -> None:
    root = fake_teams.channel_post("How do I connect to the VPN?", SAM, GENERAL, GENERAL)
    stack.post(root, fake_teams)
    answer_to(fake_teams, root)
    follow = fake_teams.channel_post("and what does VPN-E42 mean?", SAM, GENERAL, GENERAL)
    follow["conversation"]["id"] = root["conversation"]["id"]  # a reply in the same thread
    stack.post(follow, fake_teams)
    answer_to(fake_teams, follow)
    history = fake_llm.requests[-1][1]["messages"][1:-1]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert "How do I connect to the VPN?" in history[0]["content"]
    assert len(fake_teams.bot_messages(root["conversation"]["id"])) == 2


OTHER_TENANT = "11111111-2222-4333-8444-555555555555"


def test_activities_from_another_tenant_are_not_answered(
    stack: TeamsStack, fake_teams: FakeTeams
) -> None:
    foreign = fake_teams.channel_post("What is the salary range?", SAM, GENERAL, GENERAL)
    # A personal chat whose roster entry claims one of our people's emails.
    claimed = fake_teams.personal_message("What is the salary range for a Staff Engineer?", DANA)
    for activity in (foreign, claimed):
        activity["conversation"]["tenantId"] = OTHER_TENANT
        activity["channelData"]["tenant"] = {"id": OTHER_TENANT}
        assert stack.post(activity, fake_teams).status_code in (200, 202)
    time.sleep(2)
    for activity in (foreign, claimed):
        replies = fake_teams.bot_messages(activity["conversation"]["id"])
        assert [m for m in replies if m.get("replyToId") == activity["id"]] == []
    assert (
        'ragbot_ignored_requests_total{platform="teams",reason="foreign_tenant"} 2.0'
        in httpx.get(stack.url + "/metrics").text
    )


def serve_briefly(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = (tmp_path / f"serve-{port}.log").open("wb")
    server = subprocess.Popen(
        [RAGBOT, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return server, port


def test_an_app_id_without_a_tenant_refuses_to_start(stack: TeamsStack, tmp_path: Path) -> None:
    env = {k: v for k, v in stack.env.items() if k != "MICROSOFT_APP_TENANT_ID"}
    refused = subprocess.run(
        [RAGBOT, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "MICROSOFT_APP_TENANT_ID" in refused.stderr and "Traceback" not in refused.stderr


def test_listed_tenants_are_answered_without_a_home_tenant(
    stack: TeamsStack, fake_teams: FakeTeams, tmp_path: Path
) -> None:
    env = {k: v for k, v in stack.env.items() if k != "MICROSOFT_APP_TENANT_ID"}
    env["RAGBOT_TEAMS_TENANTS"] = f"{OTHER_TENANT.upper()}, {TENANT}"
    server, port = serve_briefly(env, tmp_path)
    listed = TeamsStack(env, port, tmp_path)
    listed.server = server
    try:
        wait_for(listed._healthy, 30, "the front door")
        ours = fake_teams.channel_post("How long is parental leave?", SAM, GENERAL, GENERAL)
        assert listed.post(ours, fake_teams).status_code in (200, 202)
        assert "Leave Policy" in answer_to(fake_teams, ours)["text"]
        unlisted = fake_teams.channel_post("How long is parental leave?", SAM, GENERAL, GENERAL)
        unlisted["conversation"]["tenantId"] = "22222222-2222-4333-8444-555555555555"
        unlisted["channelData"]["tenant"] = {"id": unlisted["conversation"]["tenantId"]}
        assert listed.post(unlisted, fake_teams).status_code in (200, 202)
        time.sleep(2)
        assert fake_teams.bot_messages(unlisted["conversation"]["id"]) == []
    finally:
        listed.server = server
        listed.stop()


def test_without_an_app_id_or_development_mode_teams_is_off(
    stack: TeamsStack, fake_teams: FakeTeams, tmp_path: Path
) -> None:
    env = {
        k: v
        for k, v in stack.env.items()
        if k not in ("REDIS_URL", "MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD")
    }
    server, port = serve_briefly(env, tmp_path)
    off = TeamsStack(env, port, tmp_path)
    off.server = server
    try:
        wait_for(off._healthy, 30, "the front door")
        local = fake_teams.personal_message("What is the salary range?", DANA)
        assert off.post(local, fake_teams, token=None).status_code == 404
        time.sleep(1)
        replies = fake_teams.bot_messages(local["conversation"]["id"])
        assert [m for m in replies if m.get("replyToId") == local["id"]] == []
    finally:
        off.stop()


def test_a_personal_chat_answer_streams_then_becomes_the_checked_answer(
    stack: TeamsStack, fake_teams: FakeTeams, fake_llm: FakeOpenAI
) -> None:
    fake_llm.responder, fake_llm.tokens_per_second = long_reply, 40  # about 3 s of writing
    try:
        activity = fake_teams.personal_message("How long is parental leave?", SAM)
        assert stack.post(activity, fake_teams).status_code in (200, 202)
        reply = answer_to(fake_teams, activity)
    finally:
        fake_llm.responder, fake_llm.tokens_per_second = cite_first_source, 0.0
    conversation = activity["conversation"]["id"]
    replies = [m for m in fake_teams.bot_messages(conversation) if m["replyToId"] == activity["id"]]
    assert replies == [reply], "the placeholder made way for the stream"
    assert reply["type"] == "message" and reply["streaming"] is False
    assert reply["sequence"] >= 2 and reply["updates"] >= 2, "informative, then text"
    assert "[7]" not in reply["text"] and "Leave Policy" in reply["text"]
    assert citations(reply) and reply["channelData"]["feedbackLoopEnabled"]
    (info,) = [e for e in reply["entities"] if e.get("type") == "streaminfo"]
    assert info == {"type": "streaminfo", "streamId": reply["id"], "streamType": "final"}
