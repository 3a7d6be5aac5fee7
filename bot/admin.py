"""The admin commands, the same words and replies on every platform: `status`, `reindex
[source…] [--full]` and `help`. Sources come from the registry, so a new source needs no
change here. Each platform's front door parses its own message form and replies its own way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from workers.ingest.sources import SOURCES, configured_sources
from workers.settings import Settings

NOT_ADMIN = "Sorry, only ragbot admins can do that. Ask me a question instead!"
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


def is_admin(identities: Iterable[str | None], settings: Settings) -> bool:
    """True when any of the person's ids or emails is listed in `RAGBOT_ADMINS`."""
    admins = {admin.lower() for admin in settings.ragbot_admins}
    return any(identity and identity.lower() in admins for identity in identities)
