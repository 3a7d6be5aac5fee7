"""The admin commands, the same words and replies on every platform: `status`, `reindex
[source…] [--full]`, `updates on|off` (for the conversation it is said in) and `help`. Sources
come from the registry, so a new source needs no change here. Each platform's front door parses
its own message form and replies its own way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.store import AsyncStore
from workers.conversation_settings import SETTING_SECONDS, updates_off_key
from workers.ingest.sources import SOURCES, configured_sources
from workers.settings import Settings

NOT_ADMIN = "Sorry, only ragbot admins can do that. Ask me a question instead!"
UPDATES_OFF = (
    "Answers here will no longer get an update when a source they cited changes. Sources that "
    "are removed or restricted are still taken out of old answers."
)
UPDATES_ON = "Answers here will get an update when a source they cited changes."
UPDATES_USAGE = "Say `updates on` or `updates off`."
SETTING_NOT_SAVED = "I couldn't save that setting just now. Please try again in a minute."
CHECKING = "Checking the sources…"
SOURCE_CHOICES = "|".join(SOURCES)


def unknown_source() -> str:
    return f"I don't know that source. Choose from: {', '.join(SOURCES)}."


def queued(sources: Iterable[str], full: bool) -> str:
    return (
        f"Queued a {'full ' if full else ''}reindex of {', '.join(sources)}. "
        "I'll reply here when it's done."
    )


@dataclass(frozen=True)
class Reindex:
    """What a reindex command asks for: sources to sync, or why it cannot be done."""

    sources: tuple[str, ...]
    refusal: str | None = None


def plan_reindex(named: Iterable[str], settings: Settings) -> Reindex:
    """The named sources, or every configured one when none is named."""
    sources = tuple(named) or tuple(configured_sources(settings))
    if not sources or any(source not in SOURCES for source in sources):
        return Reindex((), unknown_source())
    return Reindex(sources)


async def set_updates(store: AsyncStore, conversation: str, on: bool) -> str:
    """Turn answer updates on or off for one conversation; the reply to give."""
    key = updates_off_key(conversation)
    if on:
        await store.delete(key)
        return UPDATES_ON
    await store.put(key, "1", SETTING_SECONDS)
    return UPDATES_OFF


def is_admin(identities: Iterable[str | None], settings: Settings) -> bool:
    """True when any of the person's ids or emails is listed in `RAGBOT_ADMINS`."""
    admins = {admin.lower() for admin in settings.ragbot_admins}
    return any(identity and identity.lower() in admins for identity in identities)
