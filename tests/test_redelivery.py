"""An answer task that runs twice (a worker died after posting) edits what it posted, never
posts it again: Slack and Teams delivery against their fake APIs, with long multi-part answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.fakes.slack_api import TEAM, FakeSlack
from tests.fakes.teams_api import BOT_ID, BOT_NAME, TENANT, FakeTeams, Member
from workers.delivery.render import slack_answer
from workers.delivery.slack import SlackDelivery, SlackThread, make_web_client
from workers.delivery.slack_question import SlackQuestion
from workers.delivery.teams import TeamsDelivery, TeamsThread
from workers.delivery.teams_question import TeamsQuestion
from workers.kv import MemoryKeyValue
from workers.rag.answer import Answer, SourceRef
from workers.readers import private_view, public_only
from workers.settings import Settings

SOURCE = SourceRef(
    1,
    "Leave Policy",
    "https://wiki.acme.com/leave",
    "files",
    datetime(2026, 11, 1, tzinfo=UTC),
    "d",
)
VIEW = private_view(public_only())  # whose view: none of these tests' concern
# Long enough for several Slack messages (50 blocks each) and several Teams messages (28 KB).
LONG = Answer(
    "\n\n".join(f"Paragraph {n}: leave accrues monthly [1]. " * 30 for n in range(150)),
    False,
    [SOURCE],
)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_teams() -> Iterator[FakeTeams]:
    fake = FakeTeams().start()
    yield fake
    fake.stop()


def personal_question(fake: FakeTeams, placeholder: str | None = None) -> TeamsQuestion:
    asker = Member("29:1sam", "aad-sam", "sam@acme.com", "Sam Park")
    activity = fake.personal_message("leave?", asker)
    return TeamsQuestion(
        service_url=fake.service_url,
        tenant_id=TENANT,
        conversation_id=activity["conversation"]["id"],
        conversation_type="personal",
        activity_id=activity["id"],
        user_id=asker.id,
        user_aad_id=asker.aad,
        bot_id=BOT_ID,
        bot_name=BOT_NAME,
        text="leave?",
        placeholder_id=placeholder,
    )


def test_slack_edits_every_part_of_a_long_answer_on_a_second_run(fake_slack: FakeSlack) -> None:
    assert len(slack_answer(LONG, "q")) > 2
    client = make_web_client(fake_slack.token, fake_slack.api_url)
    ts = fake_slack.user_says("C0LONG", "tell me everything about leave", "U0ASKER")
    placeholder = client.chat_postMessage(channel="C0LONG", thread_ts=ts, text="Searching…")["ts"]
    question = SlackQuestion(TEAM, "C0LONG", "U0ASKER", "leave?", ts, ts, False, placeholder)
    kv = MemoryKeyValue()
    SlackThread(question, SlackDelivery(client, kv)).post_answer(LONG, VIEW)
    first = [m["ts"] for m in fake_slack.bot_messages("C0LONG")]
    SlackThread(question, SlackDelivery(client, kv)).post_answer(LONG, VIEW)
    assert [m["ts"] for m in fake_slack.bot_messages("C0LONG")] == first
    assert len(first) == len(slack_answer(LONG, "q"))


def test_teams_edits_every_part_of_a_long_answer_on_a_second_run(fake_teams: FakeTeams) -> None:
    question = personal_question(fake_teams)
    conversation = question.conversation_id
    kv = MemoryKeyValue()
    delivery = TeamsDelivery(Settings(), kv)
    TeamsThread(question, delivery).post_answer(LONG, VIEW)
    first = [m["id"] for m in fake_teams.bot_messages(conversation)]
    assert len(first) > 1
    TeamsThread(question, TeamsDelivery(Settings(), kv)).post_answer(LONG, VIEW)
    messages = fake_teams.bot_messages(conversation)
    assert [m["id"] for m in messages] == first
    assert all(m.get("edits") == 1 for m in messages)


def test_a_deleted_slack_placeholder_still_gets_the_answer_once(fake_slack: FakeSlack) -> None:
    client = make_web_client(fake_slack.token, fake_slack.api_url)
    ts = fake_slack.user_says("C0GONE", "leave?", "U0ASKER")
    placeholder = client.chat_postMessage(channel="C0GONE", thread_ts=ts, text="Searching…")["ts"]
    fake_slack.messages["C0GONE"] = [
        m for m in fake_slack.messages["C0GONE"] if m["ts"] != placeholder
    ]
    question = SlackQuestion(TEAM, "C0GONE", "U0ASKER", "leave?", ts, ts, False, placeholder)
    short = Answer("Sixteen weeks [1].", False, [SOURCE])
    kv = MemoryKeyValue()
    for _ in range(2):  # the second run edits what the first one posted
        SlackThread(question, SlackDelivery(client, kv)).post_answer(short, VIEW)
    (reply,) = fake_slack.bot_messages("C0GONE")
    assert reply["thread_ts"] == ts and "Sixteen weeks" in str(reply["blocks"])


def test_a_deleted_teams_placeholder_still_gets_the_answer_once(fake_teams: FakeTeams) -> None:
    question = personal_question(fake_teams, placeholder="1700000000000-deleted")  # Teams: 404
    conversation = question.conversation_id
    kv = MemoryKeyValue()
    short = Answer("Sixteen weeks [1].", False, [SOURCE])
    for _ in range(2):
        TeamsThread(question, TeamsDelivery(Settings(), kv)).post_answer(short, VIEW)
    (reply,) = fake_teams.bot_messages(conversation)
    assert "Sixteen weeks" in reply["text"] and reply.get("edits") == 1


def test_a_slack_stream_appends_at_most_every_quarter_second_and_a_rerun_starts_none(
    fake_slack: FakeSlack,
) -> None:
    from workers.delivery.slack_stream import SlackAnswerStream

    client = make_web_client(fake_slack.token, fake_slack.api_url)
    ts = fake_slack.user_says("C0STREAM", "leave?", "U0ASKER")
    placeholder = client.chat_postMessage(channel="C0STREAM", thread_ts=ts, text="Searching…")["ts"]
    question = SlackQuestion(TEAM, "C0STREAM", "U0ASKER", "leave?", ts, ts, False, placeholder)
    kv = MemoryKeyValue()
    now = [0.0]
    stream = SlackAnswerStream(
        SlackDelivery(client, kv), question, lambda a, v: slack_answer(a, "q"), lambda: now[0]
    )
    for _ in range(20):  # a piece every 1/16 s for 1.25 s of the model writing
        stream.write("word ")
        now[0] += 0.0625
    assert stream.appends == 4, "one append per 250 ms, the rest held for the next"
    (streamed,) = fake_slack.bot_messages("C0STREAM")  # the placeholder made way
    assert streamed["streaming"] and streamed["text"].startswith("word")

    # The worker dies here; the task runs again and finishes the same message.
    again = SlackAnswerStream(
        SlackDelivery(client, kv), question, lambda a, v: slack_answer(a, "q"), lambda: now[0]
    )
    again.write("word ")
    again.finish(Answer("Sixteen weeks [1].", False, [SOURCE]), VIEW)
    (final,) = fake_slack.bot_messages("C0STREAM")
    assert final["ts"] == streamed["ts"] and not final["streaming"] and final.get("edited")
    assert "Sixteen weeks" in final["blocks"][0]["text"]["text"]
    assert len(fake_slack.called("chat.startStream")) == 1


def test_a_teams_stream_updates_once_a_second_and_a_rerun_closes_the_same_stream(
    fake_teams: FakeTeams,
) -> None:
    from workers.delivery.render import teams_answer
    from workers.delivery.teams_stream import TeamsAnswerStream

    question = personal_question(fake_teams, placeholder=None)
    kv = MemoryKeyValue()
    now = [0.0]
    shown: list[list[str]] = []

    def stream() -> TeamsAnswerStream:
        return TeamsAnswerStream(
            TeamsDelivery(Settings(), kv),
            question,
            lambda a, v: teams_answer(a),
            lambda ids, a: shown.append(ids),
            lambda: now[0],
        )

    first = stream()
    first.begin()  # the informative update starts the stream
    for _ in range(24):  # a piece every 1/8 s for 3 s
        first.write("word ")
        now[0] += 0.125
    assert first.updates == 3, "the first text at once, then one update a second"
    (streamed,) = fake_teams.bot_messages(question.conversation_id)
    assert streamed["streaming"] and streamed["text"].startswith("word word")

    # The worker dies; the task runs again: no second stream, the first one is closed.
    again = stream()
    again.begin()
    again.write("word ")
    again.finish(Answer("Sixteen weeks [1].", False, [SOURCE]), VIEW)
    (final,) = fake_teams.bot_messages(question.conversation_id)
    assert final["id"] == streamed["id"] and final["streaming"] is False
    assert final["text"].startswith("Sixteen weeks") and shown == [[streamed["id"]]]
    # Once more after the stream is final: Teams refuses a second final; the message is edited.
    stream().finish(Answer("Sixteen weeks [1].", False, [SOURCE]), VIEW)
    (edited,) = fake_teams.bot_messages(question.conversation_id)
    assert edited["id"] == streamed["id"] and edited.get("edits") == 1


def test_a_teams_channel_answer_previews_in_its_placeholder_every_second_and_a_half(
    fake_teams: FakeTeams,
) -> None:
    from workers.delivery.render import teams_answer
    from workers.delivery.teams_stream import TeamsAnswerStream

    fake_teams.rosters["19:chan@thread.tacv2"] = []
    asker = Member("29:1sam", "aad-sam", "sam@acme.com", "Sam Park")
    post = fake_teams.channel_post("leave?", asker, "19:chan@thread.tacv2", "19:chan@thread.tacv2")
    thread = post["conversation"]["id"]
    fake_teams.posted[thread] = [{"id": "p1", "type": "message", "text": "Searching…"}]
    question = TeamsQuestion(
        fake_teams.service_url,
        TENANT,
        thread,
        "channel",
        post["id"],
        asker.id,
        asker.aad,
        BOT_ID,
        BOT_NAME,
        "leave?",
        placeholder_id="p1",
    )
    now = [0.0]
    preview = TeamsAnswerStream(
        TeamsDelivery(Settings(), MemoryKeyValue()),
        question,
        lambda a, v: teams_answer(a),
        lambda ids, a: None,
        lambda: now[0],
    )
    preview.begin()  # channels cannot stream: nothing is sent
    for _ in range(25):  # a piece every 1/8 s for 3 s
        preview.write("word ")
        now[0] += 0.125
    assert preview.updates == 2
    (placeholder,) = fake_teams.bot_messages(thread)
    assert placeholder["edits"] == 2 and placeholder["text"].endswith("…")
    preview.finish(Answer("Sixteen weeks [1].", False, [SOURCE]), VIEW)
    (answer,) = fake_teams.bot_messages(thread)
    assert answer["edits"] == 3 and answer["text"].startswith("Sixteen weeks")
