"""A question asked in Slack, as the front door hands it to the workers: ids and text only."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SlackQuestion:
    team_id: str
    channel_id: str
    user_id: str
    text: str
    message_ts: str  # the asking message
    thread_ts: str  # the thread the answer goes to (the message itself when it starts one)
    is_direct: bool  # a DM: searched as the asker; otherwise as everyone who can read the channel
    placeholder_ts: str | None = None  # the "Searching…" message the answer replaces
    response_url: str | None = None  # slash-command answers go here, ephemerally
    # A group DM: Slack shows a `<#…>` link to one as its internal "mpdm-…" name, so answers
    # name it in words. (False in payloads queued before this field existed.)
    is_group_dm: bool = False

    @property
    def place(self) -> str:
        """The conversation as an answer names it: Slack shows a channel link as its name."""
        return "this group DM" if self.is_group_dm else f"<#{self.channel_id}>"

    @property
    def question_id(self) -> str:
        return f"slack:{self.team_id}:{self.channel_id}:{self.message_ts}"

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> SlackQuestion:
        # A field the payload lacks takes its default (None where it has none).
        values = {f.name: payload.get(f.name, f.default) for f in fields(cls)}
        arguments: dict[str, Any] = {k: None if v is MISSING else v for k, v in values.items()}
        return cls(**arguments)
