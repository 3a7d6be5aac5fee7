"""Who is in a conversation, remembered in the store between questions.

A conversation's members are read from the chat platform at most once per TTL. When the front
door sees someone join or leave (Slack `member_joined_channel` / `member_left_channel`, Teams
`conversationUpdate`), it starts a new generation for that conversation, so the next question
reads the members afresh; the TTL bounds how stale they get when such an event is lost.
Generations (rather than deleting keys) let one write forget every cached roster of a scope,
such as all channels of a Teams team.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from workers.kv import KeyValue
from workers.readers import Member

# Longer than any membership TTL (settings cap it at a day), so a forgotten generation's
# rosters have always expired before the generation itself could be forgotten.
GENERATION_SECONDS = 7 * 86400


def slack_scope(team_id: str, channel_id: str) -> str:
    return f"slack:{team_id}:{channel_id}"


def teams_scope(tenant_id: str, team_or_conversation: str) -> str:
    """A team (all its channels share its members) or a chat; never a channel's thread."""
    return f"teams:{tenant_id.lower()}:{team_or_conversation.split(';')[0]}"


def generation_key(scope: str) -> str:
    return f"membership:generation:{scope}"


def new_generation() -> str:
    return uuid.uuid4().hex


def forget(kv: KeyValue, scope: str) -> None:
    """Someone joined or left: the next question reads the members afresh."""
    kv.put(generation_key(scope), new_generation(), GENERATION_SECONDS)


class MembershipCache:
    def __init__(self, kv: KeyValue, ttl_seconds: int) -> None:
        self.kv = kv
        self.ttl_seconds = ttl_seconds

    def members(self, scope: str, fetch: Callable[[], list[Member]]) -> list[Member]:
        """The scope's members from the store, or from `fetch` (then stored for the TTL)."""
        generation = self.kv.get(generation_key(scope)) or "0"
        key = f"membership:{scope}:{generation}"
        cached = self.kv.get(key)
        if cached is not None:
            return [_member(row) for row in json.loads(cached)]
        members = fetch()
        self.kv.put(key, json.dumps([_row(m) for m in members]), self.ttl_seconds)
        return members

    def person(self, key: str, fetch: Callable[[], Member]) -> Member:
        """One account's record (Slack's `users.info`), kept for the TTL and shared by every
        conversation they are in."""
        cached = self.kv.get(f"membership:account:{key}")
        if cached is not None:
            return _member(json.loads(cached))
        member = fetch()
        self.kv.put(f"membership:account:{key}", json.dumps(_row(member)), self.ttl_seconds)
        return member


def _row(member: Member) -> dict[str, Any]:
    return {"id": member.id, "kind": member.kind, "emails": list(member.emails)}


def _member(row: dict[str, Any]) -> Member:
    return Member(row["id"], row["kind"], tuple(row["emails"]))
