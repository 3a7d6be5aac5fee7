"""Google Drive: Docs, Sheets, Slides, PDFs and Office files, with their sharing as the ACL.

What is indexed ("corpora"): each configured shared drive, and each impersonated user's files
(with no shared drives configured, everything those users can see, shared drives included).
A file seen through several corpora is one document, `gdrive:<file id>`.

First sync: take each corpus's change-log start token, then list every file; the tokens are
the checkpoint. Incremental sync reads each change log from its token: trashed or removed files
leave the index, changed ones are fetched again only when their content version differs from
the index's (a sharing change alone updates the ACL without downloading or re-embedding). The
token is checkpointed after each page, so a crash resumes from the last page written.

Sharing -> principals: users `user:<email>`, groups `group:google:<email>`, a domain
`domain:<d>` and anyone `public` only when the sharing is discoverable; "anyone with the link"
is not treated as visible to anyone, since people without the link cannot find the file.
Shared-drive items carry no `permissions` in listings, so they are read with
`permissions.list`. Permissions that cannot be read fail closed: the file is removed from the
index and reported.

Over 400 lines because listing, change logs, sharing and export are one protocol whose steps
share the corpus bookkeeping; split, each part would need the others' private state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from connectors.base import (
    Checkpoint,
    ConnectorError,
    Deleted,
    Document,
    PermissionsChanged,
    PollItem,
    Skipped,
)
from connectors.gdrive_client import DriveApiError, GoogleClient
from connectors.isolation import IsolatedParser
from connectors.limits import ParseLimits
from connectors.parsing import UnreadableDocument, first_heading

log = logging.getLogger(__name__)

SOURCE = "gdrive"
FOLDER = "application/vnd.google-apps.folder"
SHORTCUT = "application/vnd.google-apps.shortcut"
GOOGLE_DOC = "application/vnd.google-apps.document"
GOOGLE_SHEET = "application/vnd.google-apps.spreadsheet"
GOOGLE_SLIDES = "application/vnd.google-apps.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Downloaded files: MIME type -> the suffix our parser reads them by.
DOWNLOADED = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    XLSX: ".xlsx",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/html": ".html",
}
EXPORT_LIMIT = "exportSizeLimitExceeded"
EXPORT_BYTES = 10 * 1024 * 1024  # Google exports nothing larger
NOT_DOWNLOADABLE = ("cannotDownloadFile", "cannotExportFile", "fileNotDownloadable")
MAX_FOLDER_DEPTH = 32  # folders above a file that become its places
FILE_FIELDS = (
    "id,name,mimeType,modifiedTime,version,size,md5Checksum,webViewLink,trashed,driveId,parents,"
    "permissions(type,role,emailAddress,domain,allowFileDiscovery,deleted),"
    "shortcutDetails(targetId,targetMimeType),capabilities(canDownload)"
)
CHANGE_FIELDS = (
    f"nextPageToken,newStartPageToken,changes(changeType,removed,fileId,file({FILE_FIELDS}))"
)
PERMISSION_FIELDS = (
    "nextPageToken,permissions(type,role,emailAddress,domain,allowFileDiscovery,deleted)"
)


@dataclass(frozen=True)
class DriveConfig:
    users: tuple[str, ...] = ()  # impersonated users; empty with OAuth user credentials
    drive_ids: tuple[str, ...] = ()
    admin_user: str | None = None  # for group memberships (Admin SDK Directory)
    max_file_bytes: int = 20 * 1024 * 1024
    page_size: int = 1000
    # Files are written by anyone they are shared with: parsed in a child process with these
    # time and memory limits (connectors.isolation); the size limit is the one above.
    parse: ParseLimits = field(default_factory=ParseLimits)


@dataclass(frozen=True)
class Corpus:
    """One change log: a user's view of Drive, or one shared drive (read as `user`)."""

    key: str
    user: str | None
    drive_id: str | None = None


class GoogleDriveConnector:
    name = SOURCE
    listing_is_cheap = False

    def __init__(self, client: GoogleClient, config: DriveConfig) -> None:
        self.client = client
        self.config = config
        self._known: Mapping[str, set[str]] = {}
        size = max(config.max_file_bytes, EXPORT_BYTES)  # an export may exceed the file limit
        self._parser = IsolatedParser(replace(config.parse, max_bytes=size))
        self._drive_names: dict[str, str] = {}
        self._folder_parents: dict[str, str | None] = {}
        self._all_users: tuple[str, ...] | None = None

    # -- the Connector protocol ---------------------------------------------------------------

    def use_known_versions(self, versions: Mapping[str, set[str]]) -> None:
        self._known = versions

    def corpora(self) -> list[Corpus]:
        users: list[str | None] = list(self._users()) or [None]
        found = [Corpus(f"user:{u or 'me'}", u) for u in users]
        found += [Corpus(f"drive:{d}", users[0], d) for d in self.config.drive_ids]
        return found

    def poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        """Changes since the checkpoint, corpus by corpus; the parser's child process stops
        when the poll does."""
        try:
            yield from self._poll(checkpoint)
        finally:
            self._parser.close()

    def _poll(self, checkpoint: Checkpoint | None) -> Iterator[PollItem]:
        tokens: dict[str, str] = json.loads(checkpoint.value) if checkpoint else {}
        seen: set[str] = set()
        for corpus in self.corpora():
            first = (
                self._first_changes(corpus, tokens[corpus.key]) if corpus.key in tokens else None
            )
            if first is not None:
                yield from self._changes(corpus, tokens, seen, first)
            else:
                # The token first: changes made while listing are replayed next time.
                tokens[corpus.key] = self._start_token(corpus)
                for file in self._list(corpus, FILE_FIELDS):
                    yield from self._items(corpus, file, seen)
                yield Checkpoint(SOURCE, json.dumps(tokens, sort_keys=True))

    def list_ids(self) -> Iterator[str]:
        seen: set[str] = set()
        fields = "id,mimeType,shortcutDetails(targetId)"
        for corpus in self.corpora():
            for file in self._list(corpus, fields):
                file_id = file["id"]
                if file.get("mimeType") == SHORTCUT:
                    file_id = (file.get("shortcutDetails") or {}).get("targetId") or file_id
                if file.get("mimeType") != FOLDER and file_id not in seen:
                    seen.add(file_id)
                    yield f"{SOURCE}:{file_id}"

    def members(self, groups: set[str]) -> dict[str, set[str]]:
        """Google Groups members via the Admin SDK Directory (when an admin user is set)."""
        if not self.config.admin_user:
            return {}
        directory = self.client.directory(self.config.admin_user)
        found: dict[str, set[str]] = {}
        prefix = "group:google:"
        for group in sorted(g for g in groups if g.startswith(prefix)):
            members = self.client.pages(
                partial(_members_page, directory, group[len(prefix) :]), "members"
            )
            try:
                for member in members:
                    if member.get("type") == "USER" and member.get("email"):
                        found.setdefault(str(member["email"]).lower(), set()).add(group)
            except DriveApiError as exc:
                if exc.status != 404:  # a deleted group has no members; anything else fails
                    raise
        return found

    # -- listing and changes ------------------------------------------------------------------

    def _users(self) -> tuple[str, ...]:
        """The impersonated users; `*` means every active user the Admin SDK lists."""
        if "*" not in self.config.users:
            return self.config.users
        if self._all_users is None:
            if not self.config.admin_user:
                raise ConnectorError("GOOGLE_IMPERSONATE=* needs GOOGLE_ADMIN_USER")
            directory = self.client.directory(self.config.admin_user)
            listed = self.client.pages(
                lambda token: directory.users().list(
                    customer="my_customer", query="isSuspended=false", pageToken=token
                ),
                "users",
            )
            self._all_users = tuple(sorted(str(u["primaryEmail"]).lower() for u in listed))
        return self._all_users

    def _drive(self, corpus: Corpus) -> Any:
        return self.client.drive(corpus.user)

    def _start_token(self, corpus: Corpus) -> str:
        files = self._drive(corpus).changes()
        if corpus.drive_id:
            request = files.getStartPageToken(driveId=corpus.drive_id, supportsAllDrives=True)
        else:
            request = files.getStartPageToken(supportsAllDrives=True)
        return str(self.client.execute(request)["startPageToken"])

    def _list(self, corpus: Corpus, fields: str) -> Iterator[dict[str, Any]]:
        service = self._drive(corpus).files()
        params: dict[str, Any] = {
            "q": "trashed = false",
            "pageSize": self.config.page_size,
            "fields": f"nextPageToken,files({fields})",
            "supportsAllDrives": True,
        }
        if corpus.drive_id:
            params |= {"corpora": "drive", "driveId": corpus.drive_id}
            params["includeItemsFromAllDrives"] = True
        elif self.config.drive_ids:
            params["corpora"] = "user"
        else:
            params |= {"corpora": "allDrives", "includeItemsFromAllDrives": True}
        yield from self.client.pages(lambda token: service.list(pageToken=token, **params), "files")

    def _change_request(self, corpus: Corpus, token: str) -> Any:
        params: dict[str, Any] = {
            "pageToken": token,
            "includeRemoved": True,
            "supportsAllDrives": True,
            "pageSize": self.config.page_size,
            "fields": CHANGE_FIELDS,
        }
        if corpus.drive_id:
            params |= {"driveId": corpus.drive_id, "includeItemsFromAllDrives": True}
        else:
            params["includeItemsFromAllDrives"] = not self.config.drive_ids
        return self._drive(corpus).changes().list(**params)

    def _first_changes(self, corpus: Corpus, token: str) -> dict[str, Any] | None:
        """The first page from the saved position; None when Drive no longer accepts it, so
        the corpus is listed again (unchanged files cost no download) instead of failing on
        every sync."""
        try:
            page: dict[str, Any] = self.client.execute(self._change_request(corpus, token))
        except DriveApiError as exc:
            if exc.status in (400, 404):
                log.warning("change-log position of %s rejected; listing it again", corpus.key)
                return None
            raise
        return page

    def _changes(
        self, corpus: Corpus, tokens: dict[str, str], seen: set[str], page: dict[str, Any]
    ) -> Iterator[PollItem]:
        while True:
            for change in page.get("changes") or []:
                if change.get("changeType", "file") != "file":
                    continue  # a shared drive's own settings changed
                file = change.get("file") or {}
                if change.get("removed") or file.get("trashed"):
                    yield from self._gone(corpus, str(change["fileId"]), seen)
                else:
                    yield from self._items(corpus, file, seen)
            tokens[corpus.key] = str(page.get("nextPageToken") or page["newStartPageToken"])
            yield Checkpoint(SOURCE, json.dumps(tokens, sort_keys=True))
            if not page.get("nextPageToken"):
                return
            page = self.client.execute(self._change_request(corpus, tokens[corpus.key]))

    def _gone(self, corpus: Corpus, file_id: str, seen: set[str]) -> Iterator[PollItem]:
        """Removed from one view: gone unless another corpus still sees it untrashed."""
        if file_id in seen:
            return
        seen.add(file_id)
        for other in self.corpora():
            if other == corpus:
                continue
            try:
                file = self.client.execute(
                    self._drive(other)
                    .files()
                    .get(fileId=file_id, fields=FILE_FIELDS, supportsAllDrives=True)
                )
            except DriveApiError as exc:
                if exc.status in (403, 404):
                    continue
                raise
            if not file.get("trashed"):
                seen.discard(file_id)
                yield from self._items(other, file, seen)
                return
        yield Deleted(f"{SOURCE}:{file_id}")

    # -- one file -----------------------------------------------------------------------------

    def _items(self, corpus: Corpus, file: dict[str, Any], seen: set[str]) -> Iterator[PollItem]:
        file_id = str(file.get("id") or "")
        mime = str(file.get("mimeType") or "")
        if not file_id or file_id in seen or mime == FOLDER:
            return
        seen.add(file_id)
        doc_id = f"{SOURCE}:{file_id}"
        if file.get("trashed"):
            yield Deleted(doc_id)
            return
        if mime == SHORTCUT:
            target = (file.get("shortcutDetails") or {}).get("targetId")
            if target and target not in seen:
                yield from self._shortcut_target(corpus, str(target), seen)
            return
        if mime not in (GOOGLE_DOC, GOOGLE_SHEET, GOOGLE_SLIDES) and mime not in DOWNLOADED:
            return  # images, videos, forms…: nothing to read
        size = int(file.get("size") or 0)
        if size > self.config.max_file_bytes:
            limit = self.config.max_file_bytes // (1024 * 1024)
            yield Skipped(doc_id, f"larger than {limit} MB ({size // (1024 * 1024)} MB)")
            return
        acl = self._acl(corpus, file)
        if acl is None:
            yield Deleted(doc_id)  # fail closed: an old ACL may no longer hold
            yield Skipped(doc_id, "its sharing settings could not be read")
            return
        # Content only: `version` also counts sharing changes, which must not cost a download.
        version = f"{file.get('modifiedTime')}/{file.get('md5Checksum') or ''}"
        if self._known.get(doc_id) == {version}:
            yield PermissionsChanged(doc_id, acl)
            return
        try:
            text = self._text(corpus, file_id, mime)
        except UnreadableDocument as exc:
            yield Skipped(doc_id, str(exc))
            return
        name = str(file.get("name") or file_id)
        yield Document(
            id=doc_id,
            source=SOURCE,
            title=_title(name, text),
            url=str(file.get("webViewLink") or f"https://drive.google.com/open?id={file_id}"),
            text=text,
            updated_at=datetime.fromisoformat(str(file["modifiedTime"]).replace("Z", "+00:00")),
            version=version,
            acl=acl,
            breadcrumbs=self._breadcrumbs(corpus, file),
            places=self._places(corpus, file),
        )

    def _shortcut_target(self, corpus: Corpus, target: str, seen: set[str]) -> Iterator[PollItem]:
        try:
            file = self.client.execute(
                self._drive(corpus)
                .files()
                .get(fileId=target, fields=FILE_FIELDS, supportsAllDrives=True)
            )
        except DriveApiError as exc:
            if exc.status in (403, 404):  # a shortcut to something we may not open
                return
            raise
        yield from self._items(corpus, file, seen)

    def _text(self, corpus: Corpus, file_id: str, mime: str) -> str:
        files = self._drive(corpus).files()
        parse = self._parser.to_markdown
        try:
            if mime == GOOGLE_DOC:
                try:
                    data = self.client.execute(
                        files.export(fileId=file_id, mimeType="text/markdown")
                    )
                    return parse(_bytes(data), ".md")
                except DriveApiError as exc:
                    if exc.status != 400:  # older Docs may not export Markdown
                        raise
                data = self.client.execute(files.export(fileId=file_id, mimeType="text/plain"))
                return parse(_bytes(data), ".txt")
            if mime == GOOGLE_SHEET:
                data = self.client.execute(files.export(fileId=file_id, mimeType=XLSX))
                return parse(_bytes(data), ".xlsx")
            if mime == GOOGLE_SLIDES:
                data = self.client.execute(files.export(fileId=file_id, mimeType="text/plain"))
                return parse(_bytes(data), ".txt")
            data = self.client.execute(files.get_media(fileId=file_id, supportsAllDrives=True))
            return parse(_bytes(data), DOWNLOADED[mime])
        except DriveApiError as exc:
            if exc.reason == EXPORT_LIMIT:
                raise UnreadableDocument("too large to export (Google's limit is 10 MB)") from exc
            if exc.reason in NOT_DOWNLOADABLE:
                raise UnreadableDocument("its owner disabled downloading") from exc
            if exc.status == 404:
                raise UnreadableDocument("no longer available") from exc
            raise

    def _acl(self, corpus: Corpus, file: dict[str, Any]) -> frozenset[str] | None:
        permissions = file.get("permissions")
        if permissions is None or file.get("driveId"):
            service = self._drive(corpus).permissions()
            file_id = file["id"]
            try:
                permissions = list(
                    self.client.pages(
                        lambda token: service.list(
                            fileId=file_id,
                            supportsAllDrives=True,
                            fields=PERMISSION_FIELDS,
                            pageSize=100,
                            pageToken=token,
                        ),
                        "permissions",
                    )
                )
            except DriveApiError as exc:
                if exc.status in (403, 404):
                    log.warning("permissions of %s unreadable: %s", file_id, exc)
                    return None
                raise
        return principals(permissions)

    def _places(self, corpus: Corpus, file: dict[str, Any]) -> tuple[str, ...]:
        """The shared drive and every folder above the file, outermost first (`/ragbot scope
        add gdrive:<id>`). Each folder's parent is asked once per connector; a folder we may
        not open ends the chain there."""
        chain: list[str] = []
        parents = file.get("parents") or []
        folder: str | None = str(parents[0]) if parents else None
        while folder and folder not in chain and len(chain) < MAX_FOLDER_DEPTH:
            chain.append(folder)
            if folder not in self._folder_parents:
                self._folder_parents[folder] = self._parent_of(corpus, folder)
            folder = self._folder_parents[folder]
        drive_id = str(file.get("driveId") or "")
        outermost_first = [f for f in reversed(chain) if f != drive_id]
        return tuple(([drive_id] if drive_id else []) + outermost_first)

    def _parent_of(self, corpus: Corpus, folder: str) -> str | None:
        try:
            found = self.client.execute(
                self._drive(corpus)
                .files()
                .get(fileId=folder, fields="id,parents", supportsAllDrives=True)
            )
        except DriveApiError as exc:
            if exc.status in (403, 404):  # above what we may open: the chain ends here
                return None
            raise
        parents = found.get("parents") or []
        return str(parents[0]) if parents else None

    def _breadcrumbs(self, corpus: Corpus, file: dict[str, Any]) -> tuple[str, ...]:
        drive_id = file.get("driveId")
        if not drive_id:
            return ("Google Drive",)
        if drive_id not in self._drive_names:
            try:
                drive = self.client.execute(
                    self._drive(corpus).drives().get(driveId=drive_id, fields="name")
                )
                self._drive_names[drive_id] = str(drive.get("name") or drive_id)
            except ConnectorError:
                self._drive_names[drive_id] = "Shared drive"
        return ("Google Drive", self._drive_names[drive_id])


def principals(permissions: list[dict[str, Any]]) -> frozenset[str]:
    """Drive permissions -> our principals (see the module docstring for the rules)."""
    found: set[str] = set()
    for permission in permissions:
        if permission.get("deleted"):
            continue
        kind = permission.get("type")
        email = str(permission.get("emailAddress") or "").lower()
        discoverable = bool(permission.get("allowFileDiscovery"))
        if kind == "user" and email:
            found.add(f"user:{email}")
        elif kind == "group" and email:
            found.add(f"group:google:{email}")
        elif kind == "domain" and permission.get("domain") and discoverable:
            found.add(f"domain:{str(permission['domain']).lower()}")
        elif kind == "anyone" and discoverable:
            found.add("public")
    return frozenset(found)


def _members_page(directory: Any, group_email: str, token: str | None) -> Any:
    return directory.members().list(
        groupKey=group_email, includeDerivedMembership=True, pageToken=token
    )


def _bytes(data: Any) -> bytes:
    return data if isinstance(data, bytes) else str(data).encode("utf-8")


def _title(name: str, text: str) -> str:
    """The file's name; for a name like "Untitled document", its first heading instead."""
    if name.lower().startswith("untitled"):
        return first_heading(text) or name
    return name
