"""Reading Teams messages: mentions, markup, commands and threads."""

from __future__ import annotations

from workers.delivery.teams_question import (
    Command,
    parse_command,
    question_text,
    thread_conversation_id,
)


def test_the_bots_mention_and_teams_markup_are_removed() -> None:
    text = "<at>ragbot</at> What&#39;s the policy&nbsp;for <b>parental</b> leave?\r\n"
    assert question_text(text, ["<at>ragbot</at>"]) == "What's the policy for parental leave?"


def test_other_mentions_keep_the_persons_name() -> None:
    text = "<at>ragbot</at> what does <at>Dana Kim</at> own?"
    assert question_text(text, ["<at>ragbot</at>"]) == "what does Dana Kim own?"


def test_line_breaks_survive_and_korean_is_untouched() -> None:
    text = "<p><at>ragbot</at> 연차 이월</p><p>한도는&nbsp;며칠인가요?</p>"
    assert question_text(text, ["<at>ragbot</at>"]) == "연차 이월\n한도는 며칠인가요?"


def test_only_exact_commands_are_commands() -> None:
    assert parse_command("status") == Command("status")
    assert parse_command("Reindex confluence --full") == Command("reindex", ("confluence",), True)
    assert parse_command("") == Command("help")
    assert parse_command("status of my expense claim?") is None
    assert parse_command("reindex: what does it mean?") is None


def test_channel_replies_go_to_the_thread() -> None:
    channel = "19:abc@thread.tacv2"
    assert thread_conversation_id(channel, "channel", "1700") == f"{channel};messageid=1700"
    threaded = f"{channel};messageid=1600"
    assert thread_conversation_id(threaded, "channel", "1700") == threaded
    assert thread_conversation_id("a:1xyz", "personal", "1700") == "a:1xyz"
