"""What every connector yields, and the protocol the sync loop drives.

A connector streams `Document`, `Deleted`, `Skipped` and `Checkpoint` items in order. The sync
loop stores a `Checkpoint` only after every item before it was written to the index, so a
crash resumes from the last safe point and loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class ConnectorError(Exception):
    """A source could not be read (unreachable, bad credentials). The index stays as it was."""


@dataclass(frozen=True)
class Document:
    """One readable unit of a source, with the principals allowed to read it.

    An empty `acl` means nobody may read it: permission problems fail closed.
    """

    id: str
    source: str
    title: str
    url: str
    text: str
    updated_at: datetime
    version: str
    acl: frozenset[str]
    breadcrumbs: tuple[str, ...] = ()
    labels: tuple[str, ...] = field(default=())
    # Where it lives, outermost first, as scope names without the source (`/ragbot scope`):
    # a Confluence space key; a shared drive's and its folders' ids; `eng/`, `eng/runbooks/`.
    places: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.updated_at.tzinfo is None:
            raise ValueError(f"{self.id}: updated_at must be timezone-aware")


@dataclass(frozen=True)
class Deleted:
    """The source no longer has this document (deleted, trashed, or no longer shared)."""

    id: str


@dataclass(frozen=True)
class PermissionsChanged:
    """The document's content is as indexed; only who may read it changed (no re-embedding)."""

    id: str
    acl: frozenset[str]


@dataclass(frozen=True)
class Skipped:
    """An item the source has but that could not be read; reported in `ragbot status`."""

    id: str
    reason: str


@dataclass(frozen=True)
class Checkpoint:
    """An opaque resume point; meaningful only to the connector that produced it."""

    source: str
    value: str


PollItem = Document | Deleted | PermissionsChanged | Skipped | Checkpoint


class Connector(Protocol):
    """A source of documents. Valid once constructed: no second set-up step."""

    name: str
    # True when list_ids costs little (a local folder): then every scheduled sync also prunes.
    # Otherwise deletions are checked on their own, slower schedule.
    listing_is_cheap: bool

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        """Changes since `checkpoint` (everything when None), ending with a new checkpoint."""
        ...

    def list_ids(self) -> Iterator[str]:
        """Every document id the source has now; cheap, used to prune deletions."""
        ...


@runtime_checkable
class GroupDirectory(Protocol):
    """A source that defines groups can say who is in them, so group ACLs work for readers."""

    def members(self, groups: set[str]) -> dict[str, set[str]]:
        """For group principals of this source: member email -> the groups they belong to."""
        ...


@runtime_checkable
class VersionAware(Protocol):
    """A source that can skip fetching content the index already holds at this version."""

    def use_known_versions(self, versions: Mapping[str, set[str]]) -> None:
        """Document id -> versions in the index, given before each poll."""
        ...
