"""A question asked in Slack, as the front door hands it to the workers: ids and text only."""

from __future__ import annotations

from dataclasses import asdict, dataclass
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

    @property
    def question_id(self) -> str:
        return f"slack:{self.team_id}:{self.channel_id}:{self.message_ts}"

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> SlackQuestion:
        return cls(**{k: payload.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]
