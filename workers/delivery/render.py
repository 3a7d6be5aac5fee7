"""Answers -> chat messages. Size limits of each platform live here and nowhere else.

Slack: a section's text holds at most 3,000 characters and a message at most 50 blocks, so a
long answer becomes several sections, and if need be several messages in the same thread.
Citations `[n]` become links to the source; the Sources list says how fresh each source is.
A conversation's answer says whose documents it drew on (`view_line`); the asker's private
add-on says it is theirs alone (`PRIVATE_HEADER`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from workers import jobs
from workers.freshness import age_text
from workers.rag.answer import Answer, SourceRef
from workers.readers import COMPANY, EXTERNAL, GUEST, MEMBERS, PUBLIC_ONLY, UNRESOLVED, View

SLACK_SECTION_CHARS = 3000
SLACK_MESSAGE_BLOCKS = 50
SLACK_FALLBACK_CHARS = 300

Block = dict[str, Any]


@dataclass(frozen=True)
class SlackMessage:
    text: str  # notification and screen-reader fallback
    blocks: list[Block]


def slack_mrkdwn(markdown: str, sources: Sequence[SourceRef]) -> str:
    """Markdown -> Slack mrkdwn: links, bold, headings; tables shown as preformatted text."""
    urls = {s.n: s.url for s in sources}
    # Slack's code blocks take no language name: fences become bare.
    return _convert(markdown, lambda line: _inline(line, urls), lambda fence: "```")


def _convert(markdown: str, prose: Callable[[str], str], fence: Callable[[str], str]) -> str:
    """Shared by both chats: code fences kept (via `fence`), code lines untouched, Markdown
    tables (which neither chat renders) shown preformatted, every other line through `prose`."""
    out: list[str] = []
    table: list[str] = []
    in_fence = False
    for line in markdown.split("\n"):
        is_fence = line.lstrip().startswith("```")
        if not is_fence and not in_fence and line.lstrip().startswith("|"):
            if not re.fullmatch(r"\s*\|?[\s:|-]+\|?\s*", line):
                table.append(line.strip())
            continue
        if table:
            out.append("```\n" + "\n".join(table) + "\n```")
            table = []
        if is_fence:
            in_fence = not in_fence
            out.append(fence(line))
        else:
            out.append(line if in_fence else prose(line))
    if table:
        out.append("```\n" + "\n".join(table) + "\n```")
    return "\n".join(out).strip()


def _inline(line: str, urls: dict[int, str]) -> str:
    line = re.sub(r"^#{1,6}\s+(.*)$", r"*\1*", line)
    line = re.sub(r"\*\*(.+?)\*\*", r"*\1*", line)
    line = re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r"<\2|\1>", line)

    def cite(match: re.Match[str]) -> str:
        url = urls.get(int(match.group(1)), "")
        return (
            f"<{url}|[{match.group(1)}]>"
            if url.startswith(("http://", "https://"))
            else match.group(0)
        )

    return re.sub(r"\[(\d{1,3})\](?!\()", cite, line)


def _sections(text: str, limit: int = SLACK_SECTION_CHARS) -> list[str]:
    """Split on paragraph, then line, then hard boundaries so each piece fits one section."""
    pieces: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(paragraph) > limit:
            cut = paragraph.rfind("\n", 0, limit)
            cut = cut if cut > 0 else limit
            pieces.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip("\n")
        current = paragraph
    if current:
        pieces.append(current)
    return pieces


def _source_line(source: SourceRef, now: datetime) -> str:
    title = source.title.replace("<", "‹").replace(">", "›")
    label = f"<{source.url}|{title}>" if source.url.startswith(("http://", "https://")) else title
    return f"[{source.n}] {label} · {source.source} · {age_text(source.updated_at, now)}"


_NARROWED = {
    GUEST: "guests are in this conversation",
    EXTERNAL: "people from another organisation are in this conversation",
    UNRESOLVED: "someone in this conversation could not be identified",
}
PRIVATE_HEADER = (
    "Only you can see this: what your own documents add. Not everyone in {place} can open them."
)


def view_line(view: View, place: str) -> str | None:
    """Whose documents a conversation's answer drew on; None for a private chat's answer.

    Says nothing about what was left out, only whose view it is."""
    if view.scope == MEMBERS:
        return f"Answered from documents everyone in {place} can open."
    if view.scope == COMPANY:
        return "Answered from company-wide documents."
    if view.scope == PUBLIC_ONLY:
        if view.reason not in _NARROWED:
            return "Answered from public documents only."
        return f"Answered from public documents only: {_NARROWED[view.reason]}."
    return None


def answer_context(view: View, place: str, note: str | None, joiner: str) -> str | None:
    """What goes under an answer: whose view it is, then a revision's note, if any."""
    return joiner.join(line for line in (view_line(view, place), note) if line) or None


def headed(answer: Answer, heading: str) -> Answer:
    """A follow-up answer (an update) under its heading."""
    return replace(answer, text=f"**{heading}**\n\n{answer.text}")


def slack_answer(
    answer: Answer,
    question_id: str,
    now: datetime | None = None,
    context: str | None = None,
    feedback: bool = True,
) -> list[SlackMessage]:
    """The answer as one or more thread messages (more only when it exceeds 50 blocks);
    `context` is a line under the answer (whose view it is, or that it is private)."""
    now = now or datetime.now(UTC)
    body = slack_mrkdwn(answer.text, answer.sources)
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": piece}} for piece in _sections(body)
    ]
    if answer.sources:
        lines = "\n".join(_source_line(s, now) for s in answer.sources)
        for piece in _sections(f"*Sources*\n{lines}"):
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": piece}]})
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    if feedback and not answer.abstained:
        blocks.append(feedback_block(question_id))
    messages: list[SlackMessage] = []
    for start in range(0, len(blocks), SLACK_MESSAGE_BLOCKS):
        part = blocks[start : start + SLACK_MESSAGE_BLOCKS]
        messages.append(SlackMessage(text=_fallback(answer.text), blocks=part))
    return messages


def feedback_block(question_id: str) -> Block:
    return {
        "type": "actions",
        "block_id": "feedback",
        "elements": [
            {
                "type": "button",
                "action_id": jobs.FEEDBACK_UP,
                "value": question_id,
                "text": {"type": "plain_text", "emoji": True, "text": "👍 Helpful"},
            },
            {
                "type": "button",
                "action_id": jobs.FEEDBACK_DOWN,
                "value": question_id,
                "text": {"type": "plain_text", "emoji": True, "text": "👎 Not helpful"},
            },
        ],
    }


def slack_notice(text: str) -> SlackMessage:
    """A short status or apology, as plain mrkdwn."""
    return SlackMessage(
        text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    )


def _fallback(text: str) -> str:
    plain = re.sub(r"\s+", " ", re.sub(r"[`*|#>]", "", text)).strip()
    return plain if len(plain) <= SLACK_FALLBACK_CHARS else plain[: SLACK_FALLBACK_CHARS - 1] + "…"


# Teams: Bot Framework activities with Markdown text. A message may be about 28 KB of JSON all
# told; a citation's title holds 80 characters, its abstract 160, and a message 20 citations.
TEAMS_MESSAGE_BYTES = 28_000
TEAMS_CITATION_NAME_CHARS = 80
TEAMS_CITATION_ABSTRACT_CHARS = 160
TEAMS_MAX_CITATIONS = 20
_CITATION = re.compile(r"\[(\d{1,3})\](?!\()")


@dataclass(frozen=True)
class TeamsMessage:
    text: str  # Teams Markdown with [n] citation markers
    citations: list[Block]  # Teams' AI-content citation claims for the markers in `text`
    feedback: bool = False

    def activity(self) -> dict[str, Any]:
        """The Bot Framework activity (JSON shape) that posts this message."""
        activity: dict[str, Any] = {"type": "message", "textFormat": "markdown", "text": self.text}
        if self.citations or self.feedback:
            activity["entities"] = [
                {
                    "type": "https://schema.org/Message",
                    "@type": "Message",
                    "@context": "https://schema.org",
                    "@id": "",
                    "additionalType": ["AIGeneratedContent"],
                    "citation": self.citations,
                }
            ]
        if self.feedback:
            activity["channelData"] = {"feedbackLoopEnabled": True}
        return activity

    def size(self) -> int:
        return len(json.dumps(self.activity()))  # ASCII-escaped, as clients send it


def teams_markdown(markdown: str) -> str:
    """Markdown -> what Teams renders: headings become bold, tables preformatted text."""
    return _convert(markdown, lambda line: re.sub(r"^#{1,6}\s+(.*)$", r"**\1**", line), str)


def teams_answer(
    answer: Answer,
    now: datetime | None = None,
    context: str | None = None,
    feedback: bool = True,
) -> list[TeamsMessage]:
    """The answer as one message, or several in the same thread when it exceeds Teams' size;
    `context` is a line under the answer (whose view it is, or that it is private)."""
    now = now or datetime.now(UTC)
    text = teams_markdown(answer.text)
    if answer.sources:
        lines = "\n".join(_teams_source_line(s, now) for s in answer.sources)
        text += f"\n\n**Sources**\n\n{lines}"
    if context:
        text += f"\n\n_{context}_"
    claims = {s.n: _citation(s, now) for s in answer.sources}
    feedback = feedback and not answer.abstained

    def message(piece: str, last: bool) -> TeamsMessage:
        cited = sorted({int(n) for n in _CITATION.findall(piece)} & claims.keys())
        citations = [claims[n] for n in cited][:TEAMS_MAX_CITATIONS]
        return TeamsMessage(piece, citations, feedback and last)

    limit = TEAMS_MESSAGE_BYTES // 2
    while True:
        pieces = _sections(text, limit)
        messages = [message(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
        if all(m.size() <= TEAMS_MESSAGE_BYTES for m in messages) or limit < 500:
            return messages
        limit //= 2


def teams_notice(text: str) -> TeamsMessage:
    return TeamsMessage(text, [])


def _teams_source_line(source: SourceRef, now: datetime) -> str:
    title = source.title.replace("[", "(").replace("]", ")")
    label = f"[{title}]({source.url})" if source.url.startswith(("http://", "https://")) else title
    return f"{source.n}. {label} · {source.source} · {age_text(source.updated_at, now)}"


def _citation(source: SourceRef, now: datetime) -> Block:
    appearance: Block = {
        "@type": "DigitalDocument",
        "name": _clip(source.title, TEAMS_CITATION_NAME_CHARS),
        "abstract": _clip(
            f"{source.source} · {age_text(source.updated_at, now)}", TEAMS_CITATION_ABSTRACT_CHARS
        ),
    }
    if source.url.startswith(("http://", "https://")):
        appearance["url"] = source.url
    return {"@type": "Claim", "position": source.n, "appearance": appearance}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
