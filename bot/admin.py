"""The admin commands, the same words and replies on every platform: `status`, `reindex
[source…] [--full]`, `updates on|off` and `scope list|add|remove` (for the conversation it is
said in), `doc list|boost|bury|hide|reset` (company-wide), `gaps [days]` and `help`. Sources come
from the registry, so a new source needs no change here. Each platform's front door parses its
own message form and replies its own way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.store import AsyncStore
from workers.conversation_settings import SETTING_SECONDS, updates_off_key
from workers.curation_store import (
    PREFERENCES_KEY,
    decode_places,
    decode_preferences,
    encode_places,
    encode_preferences,
    scope_key,
)
from workers.gap_log import DEFAULT_DAYS, DIGEST_KEY, MAX_DAYS, decode_targets
from workers.ingest.sources import SOURCES, configured_sources
from workers.rag.curation import ACTIONS, DocumentPreferences, link_text, normalize_place
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
SCOPE_USAGE = (
    "Say `scope list`, `scope add <place>` or `scope remove <place>`, where a place is a source "
    f"({', '.join(SOURCES)}) or a part of one: `confluence:ENG` (a space), `gdrive:<folder or "
    "shared drive id or link>`, `files:engineering/` (a folder)."
)
DOC_USAGE = (
    "Say `doc list`, or `doc boost|bury|hide|reset <link>` with the document's link as answers "
    "cite it."
)
GAPS_USAGE = (
    f"Say `gaps` (the last {DEFAULT_DAYS} days), `gaps <days>` (1 to {MAX_DAYS}), or "
    "`gaps weekly on|off` (a digest here every week)."
)
GAPS_ONLY_IN_PRIVATE = (
    "The knowledge gaps list questions people asked in private, so I only show them in a "
    "personal chat with me."
)
GATHERING_GAPS = "Gathering the questions the docs did not answer…"
DIGEST_ON = (
    "Every week I'll post the knowledge gaps of the past 7 days here. They quote questions "
    "people asked, in private too: keep this to a conversation only admins read."
)
DIGEST_OFF = "No more weekly knowledge-gaps digest."
MAX_PLACES = 50  # per conversation: each is a term of every search's filter
MAX_PREFERENCES = 1000  # documents with a boost, burial or hiding
DOC_REPLIES = {
    "boost": "Boosted {url}: it now ranks a little higher when it is relevant.",
    "bury": "Buried {url}: it now ranks a little lower, and still answers when nothing else does.",
    "hide": "Hidden {url}: answers no longer use it (it stays in its source). "
    "`doc reset` brings it back.",
    "reset": "{url} ranks on its own merits again.",
}


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


async def scope_command(store: AsyncStore, conversation: str, args: Sequence[str]) -> str:
    """`scope [list]`, `scope add <place>`, `scope remove <place>` for one conversation."""
    words = list(args) or ["list"]
    verb = words[0].lower()
    places = decode_places(await store.get(scope_key(conversation)))
    if verb == "list" and len(words) == 1:
        return describe_scope(places)
    if verb not in ("add", "remove") or len(words) != 2:
        return SCOPE_USAGE
    place = normalize_place(words[1], SOURCES)
    if place is None:
        return f"I don't know that place. {SCOPE_USAGE}"
    if verb == "add":
        if len(places) >= MAX_PLACES and place not in places:
            return f"A conversation can answer from at most {MAX_PLACES} places."
        places = places | {place}
    else:
        if place not in places:
            return f"`{place}` is not in this conversation's scope.\n{describe_scope(places)}"
        places = places - {place}
    if places:
        await store.put(scope_key(conversation), encode_places(places), SETTING_SECONDS)
    else:
        await store.delete(scope_key(conversation))
    return describe_scope(places)


def describe_scope(places: frozenset[str]) -> str:
    if not places:
        return "Answers here draw on every source (no scope set)."
    listed = "\n".join(f"• `{place}`" for place in sorted(places))
    return f"Answers here draw only on:\n{listed}"


async def doc_command(store: AsyncStore, args: Sequence[str]) -> str:
    """`doc list` and `doc boost|bury|hide|reset <url>`, for answers everywhere."""
    words = list(args)
    preferences = decode_preferences(await store.get(PREFERENCES_KEY))
    if [w.lower() for w in words] in ([], ["list"]):
        return describe_preferences(preferences)
    verb = words[0].lower()
    if verb not in (*ACTIONS, "reset") or len(words) != 2:
        return DOC_USAGE
    url = link_text(words[1])
    if "://" not in url:
        return DOC_USAGE
    actions = dict(preferences.actions)
    if verb == "reset":
        actions.pop(url, None)
    elif len(actions) >= MAX_PREFERENCES and url not in actions:
        return f"At most {MAX_PREFERENCES} documents can be boosted, buried or hidden."
    else:
        actions[url] = verb
    await store.put(
        PREFERENCES_KEY, encode_preferences(DocumentPreferences(actions)), SETTING_SECONDS
    )
    return DOC_REPLIES[verb].format(url=url)


def describe_preferences(preferences: DocumentPreferences) -> str:
    if not preferences.actions:
        return "No document is boosted, buried or hidden."
    lines = [
        f"• {action}: {url}"
        for url, action in sorted(
            preferences.actions.items(), key=lambda item: (ACTIONS.index(item[1]), item[0])
        )
    ]
    return "Documents admins ranked:\n" + "\n".join(lines)


@dataclass(frozen=True)
class GapsRequest:
    """What a `gaps` command asks for: a report over `days`, a digest turned on or off, or
    neither (then `usage` is the reply)."""

    days: int | None = None
    digest: bool | None = None
    usage: str | None = None


def plan_gaps(args: Sequence[str]) -> GapsRequest:
    words = [word.lower() for word in args]
    if not words:
        return GapsRequest(days=DEFAULT_DAYS)
    if words[0] == "weekly" and words[1:] in (["on"], ["off"]):
        return GapsRequest(digest=words[1] == "on")
    if len(words) == 1 and words[0].isdigit() and 1 <= int(words[0]) <= MAX_DAYS:
        return GapsRequest(days=int(words[0]))
    return GapsRequest(usage=GAPS_USAGE)


async def set_digest(store: AsyncStore, platform: str, target: dict[str, object] | None) -> str:
    """The weekly gaps digest goes to `target` (a question payload) on `platform`, or stops."""
    targets = decode_targets(await store.get(DIGEST_KEY))
    if target is None:
        targets.pop(platform, None)
    else:
        targets[platform] = target
    await store.put(DIGEST_KEY, json.dumps(targets), SETTING_SECONDS)
    return DIGEST_ON if target is not None else DIGEST_OFF
