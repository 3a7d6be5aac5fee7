"""A fake Google Drive v3 + Admin Directory + OAuth token endpoint on loopback.

Payloads follow the discovery schema: `files.list` / `changes.list` paging with page tokens,
`permissions` present in listings only for My Drive files the caller can share (never for
shared-drive items, which need `permissions.list`), exports (Docs as Markdown, Sheets as xlsx,
Slides as text; over 10 MB -> 403 `exportSizeLimitExceeded`), `alt=media` downloads, and a
change log per user and per shared drive with `removed` entries. Service-account assertions are
checked against the key the fake issued; every API call needs a token it issued. Scripted
faults replay 403 rate-limit and 429 errors in Google's error shape.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.loopback import LoopbackServer, send_json

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"
SHORTCUT = "application/vnd.google-apps.shortcut"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_LIMIT_BYTES = 10 * 1024 * 1024
SHARE_ROLES = {"owner", "organizer", "fileOrganizer", "writer"}


@dataclass
class DriveFile:
    id: str
    name: str
    mime: str
    content: bytes = b""
    owner: str | None = None  # My Drive files; None for shared-drive items
    drive_id: str | None = None
    permissions: list[dict[str, Any]] = field(default_factory=list)
    modified: datetime = field(default_factory=lambda: datetime(2026, 11, 1, 9, tzinfo=UTC))
    version: int = 1
    trashed: bool = False
    deleted: bool = False
    can_download: bool = True
    shortcut_target: str | None = None
    export_size: int | None = None  # pretend size of a Google-native export
    parents: list[str] = field(default_factory=list)  # folder ids (a shared drive's root: its id)


@dataclass
class Change:
    seq: int
    file_id: str
    drive_id: str | None
    visible_to: set[str]
    was_visible_to: set[str]
    deleted: bool


@dataclass
class Fault:
    path: str  # a substring of the request path
    status: int
    reason: str


@dataclass
class FakeDrive:
    domain: str = "acme.com"
    drives: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {name, members}
    groups: dict[str, list[str]] = field(default_factory=dict)  # group email -> member emails
    users: list[str] = field(default_factory=list)
    oauth_user: str | None = None
    files: dict[str, DriveFile] = field(default_factory=dict)
    log: list[Change] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    _tokens: dict[str, str] = field(default_factory=dict)  # access token -> user
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: LoopbackServer | None = None
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    client_email: str = "ragbot@acme-project.iam.gserviceaccount.com"

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def start(self) -> FakeDrive:
        self._server = LoopbackServer(self._handle)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()

    def service_account_file(self, folder: Path) -> Path:
        """A service-account key file whose key this fake trusts."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path = folder / "service-account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "acme-project",
                    "private_key_id": "key-1",
                    "private_key": pem,
                    "client_email": self.client_email,
                    "client_id": "1234567890",
                    "token_uri": "https://oauth2.googleapis.com/token",
                }
            )
        )
        return path

    def api_calls(self, kind: str | None = None) -> int:
        with self._lock:
            if kind is None:
                return sum(n for k, n in self.requests.items() if k != "token")
            return self.requests[kind]

    # -- changing Drive, as its users would ---------------------------------------------------

    def add(self, file: DriveFile) -> DriveFile:
        self._change(file, lambda: self.files.__setitem__(file.id, file))
        return file

    def edit(self, file_id: str, content: bytes) -> None:
        file = self.files[file_id]

        def apply() -> None:
            file.content = content
            file.modified += timedelta(minutes=5)
            file.version += 1

        self._change(file, apply)

    def share(self, file_id: str, permission: dict[str, Any]) -> None:
        file = self.files[file_id]
        self._change(
            file, lambda: file.permissions.append(permission | {"id": f"p{next(self._ids)}"})
        )
        file.version += 1  # sharing bumps the version, not modifiedTime

    def unshare(self, file_id: str, email: str) -> None:
        file = self.files[file_id]

        def apply() -> None:
            file.permissions = [p for p in file.permissions if p.get("emailAddress") != email]

        self._change(file, apply)
        file.version += 1

    def trash(self, file_id: str) -> None:
        file = self.files[file_id]
        self._change(file, lambda: setattr(file, "trashed", True))

    def delete(self, file_id: str) -> None:
        file = self.files[file_id]
        self._change(file, lambda: setattr(file, "deleted", True))

    def _change(self, file: DriveFile, apply: Any) -> None:
        with self._lock:
            before = self._viewers(file) if file.id in self.files else set()
            apply()
            self.log.append(
                Change(
                    len(self.log) + 1,
                    file.id,
                    file.drive_id,
                    self._viewers(file),
                    before,
                    file.deleted,
                )
            )

    # -- who sees what ------------------------------------------------------------------------

    def _viewers(self, file: DriveFile) -> set[str]:
        if file.deleted:
            return set()
        everyone = set(self.users) | ({self.oauth_user} if self.oauth_user else set())
        return {u for u in everyone if self._can_see(u, file)}

    def _can_see(self, user: str, file: DriveFile) -> bool:
        if file.deleted:
            return False
        if file.drive_id:
            return user in self.drives.get(file.drive_id, {}).get("members", [])
        if file.owner == user:
            return True
        for permission in file.permissions:
            email = permission.get("emailAddress")
            if permission["type"] == "user" and email == user:
                return True
            if permission["type"] == "group" and user in self.groups.get(email or "", []):
                return True
        return False

    def _role(self, user: str, file: DriveFile) -> str | None:
        if file.owner == user:
            return "owner"
        roles = [p["role"] for p in file.permissions if p.get("emailAddress") == user]
        return roles[0] if roles else None

    def _resource(self, file: DriveFile, user: str) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "kind": "drive#file",
            "id": file.id,
            "name": file.name,
            "mimeType": file.mime,
            "modifiedTime": file.modified.isoformat().replace("+00:00", ".000Z"),
            "version": str(file.version),
            "webViewLink": f"https://docs.google.com/open?id={file.id}",
            "trashed": file.trashed,
            "capabilities": {"canDownload": file.can_download},
        }
        if not file.mime.startswith("application/vnd.google-apps"):
            resource["size"] = str(len(file.content))
            resource["md5Checksum"] = f"{hash(file.content) & 0xFFFFFFFF:08x}"
        if file.parents:
            resource["parents"] = list(file.parents)
        if file.drive_id:
            resource["driveId"] = file.drive_id
        elif self._role(user, file) in SHARE_ROLES:
            owner = {"type": "user", "role": "owner", "emailAddress": file.owner, "id": "p0"}
            resource["permissions"] = [owner, *file.permissions]
        if file.shortcut_target:
            target = self.files.get(file.shortcut_target)
            resource["shortcutDetails"] = {
                "targetId": file.shortcut_target,
                "targetMimeType": target.mime if target else "",
            }
        return resource

    def _all_permissions(self, file: DriveFile) -> list[dict[str, Any]]:
        if file.drive_id:
            members = self.drives[file.drive_id].get("members", [])
            inherited = [
                {"id": f"m{i}", "type": "user", "role": "organizer", "emailAddress": m}
                for i, m in enumerate(members)
            ]
            return inherited + file.permissions
        owner = {"type": "user", "role": "owner", "emailAddress": file.owner, "id": "p0"}
        return [owner, *file.permissions]

    # -- HTTP ---------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        if h.command == "POST" and path == "/token":
            self._token(h, raw)
            return
        auth = h.headers.get("Authorization", "")
        user = self._tokens.get(auth.removeprefix("Bearer ").strip())
        if user is None:
            error(h, 401, "Request had invalid authentication credentials.", "authError")
            return
        with self._lock:
            fault = next((f for f in self.faults if f.path in path), None)
            if fault:
                self.faults.remove(fault)
        if fault:
            error(h, fault.status, "Rate limit exceeded", fault.reason)
            return
        with self._lock:
            self._route(h, path, query, user)

    def _route(
        self, h: BaseHTTPRequestHandler, path: str, query: dict[str, str], user: str
    ) -> None:
        if m := re.fullmatch(r"/drive/v3/files/([^/]+)/export", path):
            self._count("files.export")
            self._export(h, m[1], query, user)
        elif m := re.fullmatch(r"/drive/v3/files/([^/]+)/permissions", path):
            self._count("permissions.list")
            self._permissions(h, m[1], query, user)
        elif m := re.fullmatch(r"/drive/v3/files/([^/]+)", path):
            self._count("files.download" if query.get("alt") == "media" else "files.get")
            self._file(h, m[1], query, user)
        elif path == "/drive/v3/files":
            self._count("files.list")
            self._list(h, query, user)
        elif path == "/drive/v3/changes/startPageToken":
            self._count("changes.getStartPageToken")
            send_json(
                h, 200, {"kind": "drive#startPageToken", "startPageToken": str(len(self.log) + 1)}
            )
        elif path == "/drive/v3/changes":
            self._count("changes.list")
            self._changes(h, query, user)
        elif m := re.fullmatch(r"/drive/v3/drives/([^/]+)", path):
            self._count("drives.get")
            drive = self.drives.get(m[1])
            if drive is None or user not in drive.get("members", []):
                error(h, 404, f"Shared drive not found: {m[1]}", "notFound")
            else:
                send_json(h, 200, {"kind": "drive#drive", "id": m[1], "name": drive["name"]})
        elif m := re.fullmatch(r"/admin/directory/v1/groups/([^/]+)/members", path):
            self._count("members.list")
            members = self.groups.get(m[1])
            if members is None:
                error(h, 404, "Resource Not Found: groupKey", "notFound")
            else:
                items = [{"email": e, "type": "USER", "role": "MEMBER"} for e in members]
                send_json(h, 200, {"kind": "admin#directory#members", "members": items})
        elif path == "/admin/directory/v1/users":
            self._count("users.list")
            items = [{"primaryEmail": u, "suspended": False} for u in self.users]
            send_json(h, 200, {"kind": "admin#directory#users", "users": items})
        else:
            error(h, 404, f"Not Found: {path}", "notFound")

    def _count(self, kind: str) -> None:
        self.requests[kind] += 1

    def _token(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        self._count("token")
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        user: str | None = None
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            try:
                claims = jwt.decode(
                    form.get("assertion", ""),
                    self._key.public_key(),
                    algorithms=["RS256"],
                    audience="https://oauth2.googleapis.com/token",  # what google-auth signs for
                )
            except jwt.PyJWTError:
                send_json(h, 400, {"error": "invalid_grant", "error_description": "Invalid JWT"})
                return
            if claims.get("iss") != self.client_email:
                send_json(h, 401, {"error": "unauthorized_client"})
                return
            user = claims.get("sub") or self.client_email
        elif form.get("grant_type") == "refresh_token" and form.get("refresh_token") == "refresh-1":
            user = self.oauth_user
        if not user:
            send_json(h, 400, {"error": "invalid_grant"})
            return
        token = f"ya29.{next(self._ids)}.{int(time.time())}"
        self._tokens[token] = user
        send_json(h, 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _visible(self, user: str, query: dict[str, str]) -> list[DriveFile]:
        corpora = query.get("corpora", "user")
        drive_id = query.get("driveId")
        found = []
        for file in self.files.values():
            if file.deleted or not self._can_see(user, file):
                continue
            if "trashed = false" in query.get("q", "") and file.trashed:
                continue
            if corpora == "drive" and file.drive_id != drive_id:
                continue
            if corpora == "user" and file.drive_id:
                continue
            found.append(file)
        return found

    def _readable(self, h: BaseHTTPRequestHandler, file_id: str, user: str) -> DriveFile | None:
        """The file if `user` may see it; otherwise Drive's 404 has been sent."""
        file = self.files.get(file_id)
        if file is None or not self._can_see(user, file):
            error(h, 404, f"File not found: {file_id}.", "notFound")
            return None
        return file

    def _list(self, h: BaseHTTPRequestHandler, query: dict[str, str], user: str) -> None:
        if (
            query.get("corpora") in ("drive", "allDrives")
            and query.get("supportsAllDrives") != "true"
        ):
            error(h, 400, "supportsAllDrives is required for shared drives", "badRequest")
            return
        files = self._visible(user, query)
        size = min(int(query.get("pageSize") or 100), 1000)
        start = int(query.get("pageToken") or 0)
        body: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [self._resource(f, user) for f in files[start : start + size]],
        }
        if start + size < len(files):
            body["nextPageToken"] = str(start + size)
        send_json(h, 200, body)

    def _file(
        self, h: BaseHTTPRequestHandler, file_id: str, query: dict[str, str], user: str
    ) -> None:
        file = self._readable(h, file_id, user)
        if file is None:
            return
        if query.get("alt") != "media":
            send_json(h, 200, self._resource(file, user))
            return
        if file.mime.startswith("application/vnd.google-apps"):
            error(
                h, 403, "Only files with binary content can be downloaded.", "fileNotDownloadable"
            )
            return
        if not file.can_download:
            error(h, 403, "The user has not granted the app access.", "cannotDownloadFile")
            return
        send_bytes(h, file.content, "application/octet-stream")

    def _export(
        self, h: BaseHTTPRequestHandler, file_id: str, query: dict[str, str], user: str
    ) -> None:
        file = self._readable(h, file_id, user)
        if file is None:
            return
        wanted = query.get("mimeType", "")
        allowed = {
            DOC: {"text/markdown", "text/plain"},
            SHEET: {XLSX, "text/csv"},
            SLIDES: {"text/plain"},
        }.get(file.mime, set())
        if wanted not in allowed:
            error(h, 400, "The requested conversion is not supported.", "badRequest")
            return
        if (file.export_size or len(file.content)) > EXPORT_LIMIT_BYTES:
            error(h, 403, "This file is too large to be exported.", "exportSizeLimitExceeded")
            return
        data = file.content
        if wanted == "text/plain" and file.mime == DOC:
            data = re.sub(rb"(?m)^#+\s*", b"", data)
        send_bytes(h, data, wanted)

    def _permissions(
        self, h: BaseHTTPRequestHandler, file_id: str, query: dict[str, str], user: str
    ) -> None:
        file = self._readable(h, file_id, user)
        if file is None:
            return
        if file.drive_id and query.get("supportsAllDrives") != "true":
            error(h, 404, f"File not found: {file_id}.", "notFound")
            return
        permissions = self._all_permissions(file)
        size = min(int(query.get("pageSize") or 100), 100)
        start = int(query.get("pageToken") or 0)
        body: dict[str, Any] = {
            "kind": "drive#permissionList",
            "permissions": permissions[start : start + size],
        }
        if start + size < len(permissions):
            body["nextPageToken"] = str(start + size)
        send_json(h, 200, body)

    def _changes(self, h: BaseHTTPRequestHandler, query: dict[str, str], user: str) -> None:
        token = int(query.get("pageToken") or 0)
        if token < 1 or token > len(self.log) + 1:
            error(h, 400, "Invalid Value", "invalid")
            return
        drive_id = query.get("driveId")
        size = min(int(query.get("pageSize") or 100), 1000)
        entries: list[dict[str, Any]] = []
        position = token
        for change in self.log[token - 1 :]:
            if len(entries) >= size:
                break
            position = change.seq + 1
            entry = self._change_entry(change, user, drive_id, query)
            if entry is not None:
                entries.append(entry)
        else:
            position = len(self.log) + 1
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": entries}
        if position <= len(self.log):
            body["nextPageToken"] = str(position)
        else:
            body["newStartPageToken"] = str(len(self.log) + 1)
        send_json(h, 200, body)

    def _change_entry(
        self, change: Change, user: str, drive_id: str | None, query: dict[str, str]
    ) -> dict[str, Any] | None:
        file = self.files[change.file_id]
        if drive_id:
            if change.drive_id != drive_id:
                return None
            visible, removed = not change.deleted, change.deleted
        else:
            if change.drive_id and query.get("includeItemsFromAllDrives") != "true":
                return None
            visible = user in change.visible_to
            removed = not visible and user in change.was_visible_to
            if not visible and not removed:
                return None
        entry: dict[str, Any] = {
            "kind": "drive#change",
            "changeType": "file",
            "fileId": file.id,
            "removed": removed,
            "time": file.modified.isoformat().replace("+00:00", ".000Z"),
        }
        if not removed and not file.deleted:
            entry["file"] = self._resource(file, user)
        return entry


def error(h: BaseHTTPRequestHandler, status: int, message: str, reason: str) -> None:
    send_json(
        h,
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}],
            }
        },
    )


def send_bytes(h: BaseHTTPRequestHandler, data: bytes, content_type: str) -> None:
    h.send_response(200)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)
