"""A question asked in Teams, as the front door hands it to the workers: ids and text only.

Also the pure parts of reading a Teams message: removing the bot's @mention and Teams' HTML,
and finding the thread a channel reply belongs to.
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from workers.rag.curation import ACTIONS

_AT = re.compile(r"<at\b[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<br\s*/?>|</p>|</div>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
THREAD_MARK = ";messageid="


def question_text(text: str | None, bot_mentions: Iterable[str] = ()) -> str:
    """The question without the bot's mention, markup or entities; other mentions keep names."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    for mention in bot_mentions:
        if mention:
            text = text.replace(mention, " ")
    text = _AT.sub(lambda m: m.group(1), text)
    text = _TAG.sub("", _BREAK.sub("\n", text))
    text = html.unescape(text).replace("\xa0", " ")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line).strip()


def thread_conversation_id(conversation_id: str, conversation_type: str, activity_id: str) -> str:
    """Channel replies go to `<channel>;messageid=<root>`; chats have no threads."""
    if conversation_type != "channel" or THREAD_MARK in conversation_id or not activity_id:
        return conversation_id
    return f"{conversation_id}{THREAD_MARK}{activity_id}"


@dataclass(frozen=True)
class Command:
    verb: str  # "help" | "status" | "reindex" | "updates" (sources: ("on",) or ("off",))
    sources: tuple[str, ...] = ()
    full: bool = False
    args: tuple[str, ...] = ()  # the words after `scope`, `doc` or `gaps`


def parse_command(text: str) -> Command | None:
    """`help`, `status`, `updates on|off`, `reindex [source…] [--full]`, `scope [list|add|remove
    <place>]`, `doc list|boost|bury|hide|reset <link>` and `gaps [days|weekly on|off]`, and
    nothing else, is a command.

    Anything else is a question, so "status of my expense claim?" still gets an answer.
    """
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    if not words:
        return Command("help")
    verb, rest = words[0].lower().lstrip("/"), words[1:]
    if verb in ("help", "status") and not rest:
        return Command(verb)
    if verb == "updates" and [w.lower() for w in rest] in (["on"], ["off"]):
        return Command("updates", (rest[0].lower(),))
    if verb == "reindex" and all(re.fullmatch(r"[a-z]+|--full", w.lower()) for w in rest):
        names = tuple(w.lower() for w in rest if w.lower() != "--full")
        return Command("reindex", names, "--full" in (w.lower() for w in rest))
    if _is_curation(verb, [w.lower() for w in rest], rest):
        return Command(verb, args=tuple(rest))
    return None


def _is_curation(verb: str, lowered: list[str], rest: list[str]) -> bool:
    """The exact shapes of `scope`, `doc` and `gaps`; any other wording is a question."""
    if verb == "scope":
        place = len(rest) == 2 and re.fullmatch(r"[a-z]+(:\S+)?", rest[1].strip("<>"), re.I)
        return lowered in ([], ["list"]) or bool(place and lowered[0] in ("add", "remove"))
    if verb == "doc":
        link = len(rest) == 2 and "://" in rest[1]
        return lowered == ["list"] or bool(link and lowered[0] in (*ACTIONS, "reset"))
    if verb == "gaps":
        return lowered in ([], ["weekly", "on"], ["weekly", "off"]) or (
            len(lowered) == 1 and lowered[0].isdigit()
        )
    return False


@dataclass(frozen=True)
class TeamsQuestion:
    service_url: str
    tenant_id: str
    conversation_id: str  # where the answer goes: the channel thread or the chat
    conversation_type: str  # "personal" | "groupChat" | "channel"
    activity_id: str  # the asking message
    user_id: str  # the asker's Teams id ("29:…")
    user_aad_id: str
    bot_id: str
    bot_name: str
    text: str
    placeholder_id: str | None = None  # the "Searching…" reply the answer replaces
    channel_id: str = "msteams"
    team_id: str = ""  # a channel's team: its channels share the team's members

    @property
    def question_id(self) -> str:
        return f"teams:{self.tenant_id}:{self.conversation_id}:{self.activity_id}"

    @property
    def is_personal(self) -> bool:
        return self.conversation_type == "personal"

    @property
    def roster_id(self) -> str:
        """The conversation whose members can read the reply (a channel, not its thread)."""
        return self.conversation_id.split(";")[0]

    def reference(self) -> dict[str, Any]:
        """The Bot Framework conversation reference for proactive replies into this thread."""
        return {
            "activityId": self.activity_id,
            "user": {"id": self.user_id, "aadObjectId": self.user_aad_id or None},
            "bot": {"id": self.bot_id, "name": self.bot_name},
            "conversation": {
                "id": self.conversation_id,
                "conversationType": self.conversation_type,
                "tenantId": self.tenant_id,
                "isGroup": not self.is_personal,
            },
            "channelId": self.channel_id,
            "serviceUrl": self.service_url,
        }

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> TeamsQuestion:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in payload.items() if k in fields})
