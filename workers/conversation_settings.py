"""Per-conversation settings that admins change from the chat itself (`updates on|off`).

Light on purpose: the front doors write these keys and the workers read them.
"""

from __future__ import annotations

# Long enough to count as "until changed back".
SETTING_SECONDS = 10 * 365 * 86400


def slack_conversation(team_id: str, channel_id: str) -> str:
    return f"slack:{team_id}:{channel_id}"


def teams_conversation(tenant_id: str, conversation_id: str) -> str:
    """A channel or chat, never one of a channel's threads."""
    return f"teams:{tenant_id.lower()}:{conversation_id.split(';')[0]}"


def updates_off_key(conversation: str) -> str:
    """Set: answers in the conversation get no update when a cited source changes."""
    return f"answer_updates_off:{conversation}"
