"""What admins chose a search may draw on, and how it leans: the curation of retrieval.

Two parts, both separate from permissions (which `Audience` enforces whatever is chosen here):

- *Places*, per conversation (`/ragbot scope add confluence:ENG`): the search keeps to passages
  whose document lives in one of them. Every passage carries the places it lives in
  (`place_names`), so the index filters on them with one keyword match. No places = everything.
- *Document preferences*, company-wide (`/ragbot doc boost|bury|hide <url>`): a hidden document
  is filtered out inside the index; a boosted or buried one keeps its place in the candidate
  lists and is moved by a bounded prior after fusion (`workers/rag/fusion.py`'s `lean`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

ACTIONS = ("boost", "bury", "hide")
_DRIVE_FOLDER_URL = re.compile(r"/(?:folders|d)/([A-Za-z0-9_-]{10,})")


@dataclass(frozen=True)
class Curation:
    places: frozenset[str] = frozenset()  # scope names; empty: every place
    boosted: frozenset[str] = frozenset()  # document URLs
    buried: frozenset[str] = frozenset()
    hidden: frozenset[str] = frozenset()

    @property
    def narrows(self) -> bool:
        """True when the index must filter beyond the audience."""
        return bool(self.places or self.hidden)

    @property
    def leans(self) -> bool:
        """True when the ranking gets a prior (`workers/rag/fusion.py`'s `lean`)."""
        return bool(self.boosted or self.buried)


UNCURATED = Curation()


@dataclass(frozen=True)
class DocumentPreferences:
    """Admins' choices per document URL: "boost", "bury" or "hide"."""

    actions: dict[str, str] = field(default_factory=dict)

    def with_places(self, places: Iterable[str]) -> Curation:
        chosen = self.actions.items()
        return Curation(
            places=frozenset(places),
            boosted=frozenset(url for url, action in chosen if action == "boost"),
            buried=frozenset(url for url, action in chosen if action == "bury"),
            hidden=frozenset(url for url, action in chosen if action == "hide"),
        )


def place_names(source: str, places: Iterable[str]) -> list[str]:
    """What a passage carries: its source alone (`confluence`) and each place within it
    (`confluence:ENG`), so a scope of either kind is one keyword match."""
    return [source, *(f"{source}:{place}" for place in places)]


def link_text(text: str) -> str:
    """A link as typed, from Slack's `<url|label>` form and HTML escapes (`&amp;`)."""
    return html.unescape(text.strip().strip("<>").split("|")[0].strip())


def normalize_place(text: str, sources: Iterable[str]) -> str | None:
    """The scope name an admin meant, or None when it names no known source.

    `confluence:eng` → `confluence:ENG` (space keys are upper case, except personal spaces
    `~name`); `files:engineering` → `files:engineering/` (a folder); a Drive folder's link, with
    or without `gdrive:`, → `gdrive:<its id>`. Slack's link brackets and escapes are undone."""
    text = link_text(text)
    if text.startswith("https://drive.google.com/"):
        text = f"gdrive:{text}"
    source, _, place = text.partition(":")
    source = source.lower()
    if source not in set(sources):
        return None
    place = place.strip()
    if not place:
        return source
    if source == "confluence" and not place.startswith("~"):
        place = place.upper()
    elif source == "gdrive":
        found = _DRIVE_FOLDER_URL.search(place)
        place = found.group(1) if found else place
    elif source == "files":
        place = place.strip("/") + "/"
    return f"{source}:{place}"
