"""A fake Confluence Cloud REST API (v1) on loopback, under the `/wiki` context path.

Pages live in spaces with versions, ancestors, labels and read restrictions; CQL search supports
the clauses ragbot sends (type, space, lastmodified windows in the API user's time zone) with
cursor pagination whose `_links.next` is relative to `_links.base`. Emails can be hidden as
Cloud does, so the user API must be asked; faults (429 with Retry-After, 5xx) are scripted.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

from tests.fakes.loopback import LoopbackServer, send_json


@dataclass
class Attachment:
    id: str
    filename: str
    data: bytes
    version: int = 1
    when: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Page:
    id: str
    space: str
    title: str
    body: str
    version: int = 1
    when: datetime = field(default_factory=lambda: datetime.now(UTC))
    ancestors: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    restricted_users: list[str] = field(default_factory=list)  # account ids
    restricted_groups: list[str] = field(default_factory=list)
    status: str = "current"
    type: str = "page"
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class Space:
    key: str
    name: str
    anonymous: bool = False
    all_users: bool = True
    groups: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)


@dataclass
class ConfluenceFault:
    path: str  # a path fragment, e.g. "/content/search"
    status: int
    retry_after: str | None = None


@dataclass
class FakeConfluence:
    email: str = "bot@acme.com"
    token: str = "api-token"
    pat: str | None = None  # set: a Data Center server taking a Bearer personal access token
    context: str = "/wiki"
    timezone: str = "Europe/Berlin"
    hide_emails: bool = True
    users: dict[str, str] = field(default_factory=dict)  # account id -> email
    groups: dict[str, list[str]] = field(default_factory=dict)  # group name -> account ids
    spaces: dict[str, Space] = field(default_factory=dict)
    pages: dict[str, Page] = field(default_factory=dict)
    faults: list[ConfluenceFault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    media_requests: list[tuple[str, str | None]] = field(default_factory=list)  # path, auth
    _server: LoopbackServer | None = None
    _media: LoopbackServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url + self.context

    def start(self) -> FakeConfluence:
        self._server = LoopbackServer(self._handle)
        self._media = LoopbackServer(self._serve_media)  # another host, as Cloud's media API is
        return self

    def stop(self) -> None:
        for server in (self._server, self._media):
            if server:
                server.stop()

    def _serve_media(self, h: BaseHTTPRequestHandler) -> None:
        auth = h.headers.get("Authorization")
        self.media_requests.append((h.path, auth))
        if auth is not None:  # the media host must never see the site's credentials
            return send_json(h, 400, {"error": "unexpected Authorization header"})
        attachment_id = urlsplit(h.path).path.rsplit("/", 1)[-1]
        for page in self.pages.values():
            for attachment in page.attachments:
                if attachment.id == attachment_id:
                    h.send_response(200)
                    h.send_header("Content-Type", "application/octet-stream")
                    h.send_header("Content-Length", str(len(attachment.data)))
                    h.end_headers()
                    h.wfile.write(attachment.data)
                    return None
        return send_json(h, 404, {"error": "no such file"})

    def edit(self, page_id: str, body: str, when: datetime | None = None) -> None:
        page = self.pages[page_id]
        page.body, page.version = body, page.version + 1
        page.when = when or datetime.now(UTC)

    def count(self, fragment: str) -> int:
        return sum(1 for path in self.requests if fragment in path)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        self.requests.append(h.path)
        expected = (
            f"Bearer {self.pat}"
            if self.pat
            else "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        )
        if h.headers.get("Authorization") != expected:
            return send_json(h, 401, {"statusCode": 401, "message": "Unauthorized"})
        for fault in list(self.faults):
            if fault.path in h.path:
                self.faults.remove(fault)
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return send_json(h, fault.status, {"statusCode": fault.status}, headers)
        parts = urlsplit(h.path)
        path = parts.path.removeprefix(self.context)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        download = re.fullmatch(r"/rest/api/content/(\w+)/child/attachment/(\w+)/download", path)
        if download:
            assert self._media is not None
            h.send_response(302)
            h.send_header(
                "Location", f"{self._media.url}/file/{download.group(2)}?token=short-lived"
            )
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        routes = [
            (r"/rest/api/content/search", self._search),
            (r"/rest/api/group/member", self._group_members),
            (r"/rest/api/group/([^/]+)/member", self._group_members),
            (r"/rest/api/content/(\w+)/child/attachment", self._attachments),
            (r"/rest/api/content/(\w+)/restriction/byOperation/read", self._restriction),
            (r"/rest/api/space/(\w+)", self._space),
            (r"/rest/api/user/current", self._current_user),
            (r"/rest/api/user", self._user),
        ]
        for pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match:
                status, payload = handler(query, *match.groups())
                return send_json(h, status, payload)
        return send_json(h, 404, {"statusCode": 404, "message": f"No route {path}"})

    def _links(self, **extra: str) -> dict[str, str]:
        assert self._server is not None
        return {"base": self.url, "context": self.context, **extra}

    def _user_json(self, account: str) -> dict[str, Any]:
        if self.pat:  # Data Center names users, and shows no email to a non-admin
            return {"type": "known", "username": account, "userKey": f"key-{account}"}
        user = {
            "type": "known",
            "accountId": account,
            "accountType": "atlassian",
            "displayName": account.title(),
        }
        user["email"] = "" if self.hide_emails else self.users.get(account, "")
        return user

    def _restriction_json(self, page: Page) -> dict[str, Any]:
        return {
            "user": {
                "results": [self._user_json(a) for a in page.restricted_users],
                "size": len(page.restricted_users),
            },
            "group": {
                "results": [{"type": "group", "name": g} for g in page.restricted_groups],
                "size": len(page.restricted_groups),
            },
        }

    def _search(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        cql = query.get("cql", "")
        limit = min(int(query.get("limit", 25)), 100)
        if "cursor" in query:
            start = int(base64.urlsafe_b64decode(query["cursor"]).decode())
        else:
            start = int(query.get("start", 0))
        zone = ZoneInfo(self.timezone)

        def minute(value: str) -> datetime:
            return datetime.strptime(value, "%Y-%m-%d %H:%M").replace(tzinfo=zone)

        spaces = re.search(r"space in \(([^)]*)\)", cql)
        wanted = {s.strip().strip('"') for s in spaces.group(1).split(",")} if spaces else None
        since = re.search(r'lastmodified >= "([^"]+)"', cql)
        until = re.search(r'lastmodified < "([^"]+)"', cql)
        types = re.search(r"type in \(([^)]*)\)", cql)
        listed = {t.strip() for t in types.group(1).split(",")} if types else {"page"}
        found: list[Any] = [
            p
            for p in self.pages.values()
            if p.status == "current"
            and (wanted is None or p.space in wanted)
            and (since is None or p.when.replace(second=0, microsecond=0) >= minute(since.group(1)))
            and (until is None or p.when.replace(second=0, microsecond=0) < minute(until.group(1)))
        ]
        if "attachment" in listed:
            found += [(a, p) for p in list(found) for a in p.attachments if isinstance(p, Page)]
        found.sort(key=lambda p: (p.when, p.id) if isinstance(p, Page) else (p[0].when, p[0].id))
        chunk = found[start : start + limit]
        expanded = "expand" in query
        results = [
            self._content_json(p, expanded) if isinstance(p, Page) else self._attachment_json(*p)
            for p in chunk
        ]
        links = self._links()
        if start + limit < len(found):
            params = {k: v for k, v in query.items() if k not in ("cursor", "start")}
            if self.pat:  # Data Center pages by offset
                params["start"] = str(start + limit)
            else:  # Cloud pages by cursor
                params["cursor"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
            links["next"] = "/rest/api/content/search?" + urlencode(params)
        return 200, {
            "results": results,
            "start": start,
            "limit": limit,
            "size": len(results),
            "_links": links,
        }

    def _content_json(self, page: Page, expanded: bool) -> dict[str, Any]:
        content: dict[str, Any] = {
            "id": page.id,
            "type": page.type,
            "status": page.status,
            "title": page.title,
            "_links": {"webui": f"/spaces/{page.space}/pages/{page.id}", "self": ""},
        }
        if expanded:
            space = self.spaces[page.space]
            content |= {
                "space": {"id": 1, "key": space.key, "name": space.name, "type": "global"},
                "version": {
                    "number": page.version,
                    "when": page.when.isoformat().replace("+00:00", "Z"),
                },
                "ancestors": [
                    {"id": a, "type": "page", "title": self.pages[a].title} for a in page.ancestors
                ],
                "body": {"storage": {"value": page.body, "representation": "storage"}},
                "metadata": {
                    "labels": {
                        "results": [{"prefix": "global", "name": label} for label in page.labels]
                    }
                },
                "children": {
                    "attachment": {
                        "results": [self._attachment_json(a, page) for a in page.attachments],
                        "size": len(page.attachments),
                        "_links": {},
                    }
                },
                "restrictions": {
                    "read": {"operation": "read", "restrictions": self._restriction_json(page)}
                },
            }
        return content

    def _attachment_json(self, attachment: Attachment, page: Page) -> dict[str, Any]:
        return {
            "id": attachment.id,
            "type": "attachment",
            "status": "current",
            "title": attachment.filename,
            "version": {
                "number": attachment.version,
                "when": attachment.when.isoformat().replace("+00:00", "Z"),
            },
            "extensions": {
                "fileSize": len(attachment.data),
                "mediaType": "application/octet-stream",
            },
            "_links": {
                "webui": f"/pages/viewpageattachments.action?pageId={page.id}",
                "download": f"/download/attachments/{page.id}/{attachment.filename}",
            },
        }

    def _attachments(self, query: dict[str, str], page_id: str) -> tuple[int, dict[str, Any]]:
        page = self.pages.get(page_id)
        if page is None:
            return 404, {"statusCode": 404}
        results = [self._attachment_json(a, page) for a in page.attachments]
        return 200, {
            "results": results,
            "start": 0,
            "limit": 50,
            "size": len(results),
            "_links": self._links(),
        }

    def _restriction(self, query: dict[str, str], page_id: str) -> tuple[int, dict[str, Any]]:
        page = self.pages.get(page_id)
        if page is None:
            return 404, {"statusCode": 404}
        return 200, {"operation": "read", "restrictions": self._restriction_json(page)}

    def _space(self, query: dict[str, str], key: str) -> tuple[int, dict[str, Any]]:
        space = self.spaces.get(key)
        if space is None:
            return 404, {"statusCode": 404}
        groups = [*space.groups, *(["confluence-users"] if space.all_users else [])]
        permissions = [
            {
                "operation": {"operation": "read", "targetType": "space"},
                "anonymousAccess": space.anonymous,
                "unlicensedAccess": False,
                "subjects": {
                    "user": {"results": [self._user_json(u) for u in space.users]},
                    "group": {"results": [{"type": "group", "name": g} for g in groups]},
                },
            }
        ]
        return 200, {"id": 1, "key": key, "name": space.name, "permissions": permissions}

    def _user(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        account = query.get("accountId", "")
        if account not in self.users:
            return 404, {"statusCode": 404}
        return 200, {
            "type": "known",
            "accountId": account,
            "email": self.users[account],
            "displayName": account.title(),
        }

    def _group_members(
        self, query: dict[str, str], name: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        group = name or query.get("name", "")
        if group not in self.groups:
            return 404, {"statusCode": 404}
        members = [self._user_json(a) for a in self.groups[group]]
        return 200, {
            "results": members,
            "start": 0,
            "limit": 200,
            "size": len(members),
            "_links": self._links(),
        }

    def _current_user(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        return 200, {
            "type": "known",
            "accountId": "bot",
            "email": self.email,
            "timeZone": self.timezone,
        }
