from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workers.delivery.render import (
    SLACK_MESSAGE_BLOCKS,
    SLACK_SECTION_CHARS,
    TEAMS_MESSAGE_BYTES,
    slack_answer,
    slack_mrkdwn,
    teams_answer,
)
from workers.rag.answer import Answer, SourceRef

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def source(n: int, url: str = "https://wiki.acme.com/x") -> SourceRef:
    return SourceRef(
        n=n,
        title=f"Policy <{n}>",
        url=url,
        source="confluence",
        updated_at=NOW - timedelta(days=3),
        document_id=f"d{n}",
    )


def test_citations_become_links_and_markdown_becomes_mrkdwn() -> None:
    text = "## Leave\n**Sixteen weeks** [1], see [the form](https://hr.acme.com/form) [2]."
    out = slack_mrkdwn(text, [source(1, "https://wiki.acme.com/leave"), source(2, "file:///x.md")])
    assert out.startswith("*Leave*\n*Sixteen weeks* <https://wiki.acme.com/leave|[1]>")
    assert "<https://hr.acme.com/form|the form>" in out and out.endswith("[2].")


def test_tables_are_shown_preformatted() -> None:
    out = slack_mrkdwn("Limits:\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n[1]", [source(1)])
    assert "```\n| a | b |\n| 1 | 2 |\n```" in out


def test_sources_say_how_fresh_they_are_and_feedback_is_offered() -> None:
    (message,) = slack_answer(Answer("Yes [1].", False, [source(1)]), "slack:T:C:1", NOW)
    context = next(b for b in message.blocks if b["type"] == "context")["elements"][0]["text"]
    assert "[1] <https://wiki.acme.com/x|Policy ‹1›> · confluence · updated 3 days ago" in context
    actions = message.blocks[-1]
    assert [e["value"] for e in actions["elements"]] == ["slack:T:C:1", "slack:T:C:1"]


def test_abstentions_carry_no_feedback_buttons_or_sources() -> None:
    (message,) = slack_answer(Answer("I couldn't find this.", True), "q", NOW)
    assert [b["type"] for b in message.blocks] == ["section"]


def test_long_answers_are_split_within_slack_limits() -> None:
    paragraph = "word " * 500
    text = "\n\n".join(f"{paragraph} [1]" for _ in range(120))
    messages = slack_answer(Answer(text, False, [source(1)]), "q", NOW)
    assert len(messages) > 1
    for message in messages:
        assert len(message.blocks) <= SLACK_MESSAGE_BLOCKS
        for block in message.blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= SLACK_SECTION_CHARS
        assert len(message.text) <= 300
    assert sum(b["type"] == "section" for m in messages for b in m.blocks) >= 120
    assert messages[-1].blocks[-1]["type"] == "actions"


def test_teams_messages_carry_citations_and_a_plain_sources_list() -> None:
    answer = Answer("## Leave\nSixteen weeks [1], or see [2].", False, [source(1), source(2, "")])
    (message,) = teams_answer(answer, NOW)
    activity = message.activity()
    assert activity["text"].startswith("**Leave**\nSixteen weeks [1]")
    assert (
        "1. [Policy <1>](https://wiki.acme.com/x) · confluence · updated 3 days ago"
        in (activity["text"])
    )
    (entity,) = activity["entities"]
    assert entity["additionalType"] == ["AIGeneratedContent"]
    first, second = entity["citation"]
    assert first["position"] == 1 and first["appearance"]["url"] == "https://wiki.acme.com/x"
    assert "url" not in second["appearance"], "no link where the source has none"
    assert activity["channelData"] == {"feedbackLoopEnabled": True}


def test_an_abstention_in_teams_offers_no_feedback() -> None:
    (message,) = teams_answer(Answer("I couldn't find this.", True), NOW)
    assert "channelData" not in message.activity() and "entities" not in message.activity()


def test_long_korean_answers_split_under_the_teams_message_size() -> None:
    paragraph = "연차 휴가는 입사 첫해에 15일이며 2년마다 하루씩 늘어납니다 [1]. " * 40
    answer = Answer("\n\n".join([paragraph] * 12), False, [source(1)])
    messages = teams_answer(answer, NOW)
    assert len(messages) > 1
    assert all(m.size() <= TEAMS_MESSAGE_BYTES for m in messages)
    assert all(m.citations for m in messages), "each part cites what it marks"
    assert [m.feedback for m in messages] == [False] * (len(messages) - 1) + [True]
    assert "".join(m.text for m in messages).count("[1]") == 40 * 12
