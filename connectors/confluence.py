"""The Confluence connector: pages and blog posts of Cloud or Data Center, with their readers.

Incremental: CQL `lastmodified` windows. CQL compares minutes in the API user's time zone, so
each window starts a few minutes before the last one ended (`overlap_minutes`) and the sync's
version check drops what was already indexed; every run uses one fixed upper bound so paging is
stable while people keep editing. Deletions, trashing and archiving show up as ids missing from
`list_ids` (current pages only), which the sync prunes.

Readers: a page's read restrictions, and its ancestors' (a reader must pass every level, so with
several restricted levels only principals named on all of them are kept); an unrestricted page
is readable as its space is: anonymous -> `public`, all licensed users -> `domain:<org>`,
otherwise the space's users and groups. Any lookup that fails leaves the page visible to nobody
and is reported in `ragbot status`; the next successful sync clears it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.base import Checkpoint, ConnectorError, Document, PollItem, Skipped
from connectors.confluence_client import ConfluenceClient
from connectors.confluence_storage import storage_to_markdown
from connectors.isolation import IsolatedParser
from connectors.limits import ParseLimits
from connectors.parsing import (
    SUPPORTED_SUFFIXES,
    UnreadableDocument,
)

log = logging.getLogger(__name__)

SOURCE = "confluence"
EXPAND = ",".join(
    [
        "body.storage",
        "version",
        "space",
        "ancestors",
        "metadata.labels",
        "restrictions.read.restrictions.user",
        "restrictions.read.restrictions.group",
        "children.attachment.version",
    ]
)
# Groups that mean "every licensed user" on Cloud and Data Center.
ALL_USERS_GROUPS = frozenset({"confluence-users", "users"})


@dataclass(frozen=True)
class ConfluenceConfig:
    spaces: tuple[str, ...] = ()
    org_domains: tuple[str, ...] = ()
    page_size: int = 50
    list_page_size: int = 200
    overlap_minutes: int = 3
    timezone: str | None = None  # the API user's; detected when not given
    max_attachment_bytes: int = 20 * 1024 * 1024
    # Attachments are written by anyone who can edit a page: parsed in a child process with
    # these time and memory limits (connectors.isolation); the size limit is the one above.
    parse: ParseLimits = field(default_factory=ParseLimits)


class PermissionUnknown(Exception):
    """A permission lookup failed; the page must stay invisible until it succeeds."""


class ConfluenceConnector:
    name = SOURCE
    listing_is_cheap = False

    def __init__(self, client: ConfluenceClient, config: ConfluenceConfig) -> None:
        self.client = client
        self.config = config
        self._emails: dict[str, str | None] = {}
        self._zone: ZoneInfo | None = None
        self._parser = IsolatedParser(replace(config.parse, max_bytes=config.max_attachment_bytes))

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        """Pages and attachments changed since the checkpoint; the attachment parser's child
        process stops when the poll does."""
        try:
            yield from self._poll(checkpoint)
        finally:
            self._parser.close()

    def _poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        # CQL compares whole minutes: the bound is the end of the current minute, so an edit
        # made just before an admin's reindex is in it; later edits in this minute fall in
        # the next window, which starts `overlap_minutes` earlier.
        until = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        since = None
        if checkpoint is not None:
            since = datetime.fromisoformat(json.loads(checkpoint.value)["until"])
            since -= timedelta(minutes=self.config.overlap_minutes)
        cql = self._scope()
        if since is not None:
            cql += f' and lastmodified >= "{self._cql_time(since)}"'
        cql += f' and lastmodified < "{self._cql_time(until)}" order by lastmodified asc'
        restrictions: dict[str, frozenset[str] | None] = {}
        spaces: dict[str, frozenset[str]] = {}
        seen: set[tuple[str, str]] = set()
        for result in self.client.paginate(
            "/rest/api/content/search",
            {"cql": cql, "limit": self.config.page_size, "expand": EXPAND},
        ):
            key = (str(result["id"]), str(result.get("version", {}).get("number", "")))
            if key in seen:  # an overlapping window or a shifting page returned it twice
                continue
            seen.add(key)
            yield from self._items(result, restrictions, spaces)
        yield Checkpoint(SOURCE, json.dumps({"until": until.isoformat()}))

    def list_ids(self) -> Iterator[str]:
        for result in self.client.paginate(
            "/rest/api/content/search",
            {"cql": self._scope(with_attachments=True), "limit": self.config.list_page_size},
        ):
            yield f"{SOURCE}:{result['id']}"

    def members(self, groups: set[str]) -> dict[str, set[str]]:
        """Members of the named Confluence groups, by email (hidden emails resolved on Cloud)."""
        prefix = f"group:{SOURCE}:"
        found: dict[str, set[str]] = {}
        for principal in sorted(groups):
            if not principal.startswith(prefix):
                continue
            name = principal[len(prefix) :]
            params: dict[str, Any] = {"limit": 200}
            if self.client.personal_token:  # Data Center
                path = f"/rest/api/group/{quote(name)}/member"
            else:
                path, params["name"] = "/rest/api/group/member", name
            for user in self.client.paginate(path, params):
                try:
                    email = self._email(user)
                except PermissionUnknown:
                    email = None
                if email:
                    found.setdefault(email, set()).add(principal)
        return found

    def _scope(self, with_attachments: bool = False) -> str:
        cql = (
            "type in (page, blogpost, attachment)"
            if with_attachments
            else "type in (page, blogpost)"
        )
        if self.config.spaces:
            cql += " and space in (" + ", ".join(f'"{s}"' for s in self.config.spaces) + ")"
        return cql

    def _cql_time(self, moment: datetime) -> str:
        return moment.astimezone(self._timezone()).strftime("%Y-%m-%d %H:%M")

    def _timezone(self) -> ZoneInfo:
        if self._zone is None:
            name = self.config.timezone
            if name is None:
                try:
                    name = self.client.get("/rest/api/user/current").get("timeZone")
                except ConnectorError:
                    name = None
            try:
                self._zone = ZoneInfo(name or "UTC")
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("unknown Confluence time zone %r; using UTC", name)
                self._zone = ZoneInfo("UTC")
        return self._zone

    def _items(
        self,
        result: dict[str, Any],
        restrictions: dict[str, frozenset[str] | None],
        spaces: dict[str, frozenset[str]],
    ) -> Iterator[PollItem]:
        doc_id = f"{SOURCE}:{result['id']}"
        problem = None
        try:
            acl = self._acl(result, restrictions, spaces)
        except PermissionUnknown as exc:
            acl, problem = frozenset(), f"permissions unknown, visible to nobody: {exc}"
        if not acl and problem is None:
            problem = "no reader could be identified (hidden emails?), visible to nobody"
        storage = result.get("body", {}).get("storage", {}).get("value", "")
        space = result.get("space", {})
        version = result.get("version", {})
        page = Document(
            id=doc_id,
            source=SOURCE,
            title=str(result.get("title", "")),
            url=self.client.base_url + str(result.get("_links", {}).get("webui", "")),
            text=storage_to_markdown(storage) if storage.strip() else "",
            updated_at=_parse_time(version.get("when")),
            version=str(version.get("number", "")),
            acl=acl,
            breadcrumbs=(
                str(space.get("name") or space.get("key") or ""),
                *(str(a.get("title", "")) for a in result.get("ancestors", [])),
            ),
            labels=tuple(
                str(label.get("name"))
                for label in result.get("metadata", {}).get("labels", {}).get("results", [])
            ),
            places=(str(space["key"]),) if space.get("key") else (),
        )
        yield page
        if problem:
            yield Skipped(doc_id, problem)
        yield from self._attachments(result, page)

    def _attachment_list(self, result: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The page's attachments: expanded with the page itself, then any further pages."""
        expanded = result.get("children", {}).get("attachment")
        if expanded is None:
            yield from self.client.paginate(
                f"/rest/api/content/{result['id']}/child/attachment",
                {"limit": 50, "expand": "version"},
            )
            return
        yield from expanded.get("results", [])
        next_link = expanded.get("_links", {}).get("next")
        if next_link:
            yield from self.client.paginate(next_link, {})

    def _attachments(self, result: dict[str, Any], page: Document) -> Iterator[PollItem]:
        """Readable attachments of a page, as documents the page's readers may see."""
        page_id = str(result["id"])
        for attachment in self._attachment_list(result):
            doc_id = f"{SOURCE}:{attachment['id']}"
            filename = str(attachment.get("title", ""))
            suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
            if suffix not in SUPPORTED_SUFFIXES:
                continue
            size = int(attachment.get("extensions", {}).get("fileSize") or 0)
            if size > self.config.max_attachment_bytes:
                limit = self.config.max_attachment_bytes // (1024 * 1024)
                yield Skipped(doc_id, f"attachment larger than {limit} MB")
                continue
            try:
                data = self.client.download(
                    f"/rest/api/content/{page_id}/child/attachment/{attachment['id']}/download",
                    self.config.max_attachment_bytes,
                )
                text = self._parser.to_markdown(data, suffix)
            except (ConnectorError, UnreadableDocument) as exc:
                yield Skipped(doc_id, f"attachment {filename}: {exc}")
                continue
            version = attachment.get("version", {})
            webui = attachment.get("_links", {}).get("webui")
            yield Document(
                id=doc_id,
                source=SOURCE,
                title=f"{filename} ({page.title})",
                url=self.client.base_url + str(webui) if webui else page.url,
                text=text,
                updated_at=_parse_time(version.get("when")),
                version=str(version.get("number", "")),
                acl=page.acl,
                breadcrumbs=(*page.breadcrumbs, page.title),
                labels=page.labels,
                places=page.places,
            )

    def _acl(
        self,
        result: dict[str, Any],
        restrictions: dict[str, frozenset[str] | None],
        spaces: dict[str, frozenset[str]],
    ) -> frozenset[str]:
        levels: list[frozenset[str]] = []
        for ancestor in result.get("ancestors", []):
            ancestor_id = str(ancestor["id"])
            if ancestor_id not in restrictions:
                restrictions[ancestor_id] = self._ancestor_restriction(ancestor_id)
            if restrictions[ancestor_id] is not None:
                levels.append(restrictions[ancestor_id])  # type: ignore[arg-type]
        own = self._principals(result.get("restrictions", {}).get("read", {}).get("restrictions"))
        if own is not None:
            levels.append(own)
        if levels:
            return frozenset.intersection(*levels)
        key = str(result.get("space", {}).get("key", ""))
        if key not in spaces:
            spaces[key] = self._space_readers(key)
        return spaces[key]

    def _ancestor_restriction(self, content_id: str) -> frozenset[str] | None:
        try:
            data = self.client.get(f"/rest/api/content/{content_id}/restriction/byOperation/read")
        except ConnectorError as exc:
            raise PermissionUnknown(f"restrictions of {content_id}: {exc}") from exc
        return self._principals(data.get("restrictions"))

    def _principals(self, restriction: dict[str, Any] | None) -> frozenset[str] | None:
        """Principals of one read restriction, or None when it restricts nothing."""
        if not restriction:
            return None
        users = restriction.get("user", {}).get("results", [])
        groups = restriction.get("group", {}).get("results", [])
        if not users and not groups:
            return None
        principals = {f"group:confluence:{g['name']}" for g in groups if g.get("name")}
        for user in users:
            email = self._email(user)
            if email:
                principals.add(f"user:{email}")
        return frozenset(principals)

    def _email(self, user: dict[str, Any]) -> str | None:
        if user.get("email"):
            return str(user["email"]).lower()
        account = user.get("accountId")
        if not account:
            return None  # Data Center hides emails from non-admins: fail closed for this user
        if account not in self._emails:
            try:
                found = self.client.get("/rest/api/user", {"accountId": account}).get("email")
            except ConnectorError as exc:
                raise PermissionUnknown(f"user {account}: {exc}") from exc
            self._emails[account] = str(found).lower() if found else None
        return self._emails[account]

    def _space_readers(self, key: str) -> frozenset[str]:
        try:
            space = self.client.get(f"/rest/api/space/{key}", {"expand": "permissions"})
        except ConnectorError as exc:
            raise PermissionUnknown(f"permissions of space {key}: {exc}") from exc
        readers: set[str] = set()
        for permission in space.get("permissions", []):
            operation = permission.get("operation", {})
            if operation.get("operation") != "read" or operation.get("targetType") != "space":
                continue
            if permission.get("anonymousAccess"):
                readers.add("public")
            subjects = permission.get("subjects", {})
            for group in subjects.get("group", {}).get("results", []):
                name = str(group.get("name", ""))
                if name in ALL_USERS_GROUPS:
                    readers.update(f"domain:{d}" for d in self.config.org_domains)
                elif name:
                    readers.add(f"group:confluence:{name}")
            for user in subjects.get("user", {}).get("results", []):
                email = self._email(user)
                if email:
                    readers.add(f"user:{email}")
        return frozenset(readers)


def _parse_time(value: object) -> datetime:
    if not value:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
