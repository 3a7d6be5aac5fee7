from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.render import SLACK_MESSAGE_BLOCKS, SLACK_SECTION_CHARS, slack_answer, slack_mrkdwn
from workers.answer import Answer, SourceRef

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
