"""A fake Bot Framework on loopback: Teams' connector service, the bot's token endpoint and the
Bot Framework's OpenID metadata with a local signing key, plus Teams-shaped activities.

The connector answers the routes the Bot Framework Emulator serves
(`/v3/conversations/{id}/activities[/{activityId}]`, members, paged members, a team's channel
list) with conversation
ids containing `;` and `:`, records what the bot posted and edited, checks the bot's bearer
token when an app id is configured, and replays scripted faults (429 with Retry-After, 5xx).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.loopback import LoopbackServer, send_json

TENANT = "72f988bf-0000-4000-8000-00000000acme"
BOT_ID = "28:ragbot-app"
BOT_NAME = "ragbot"
ISSUER = "https://api.botframework.com"
KEY_ID = "local-key-1"

_ACTIVITIES = re.compile(r"^/v3/conversations/(?P<conv>[^/]+)/activities(?:/(?P<act>[^/]+))?$")
_MEMBER = re.compile(r"^/v3/conversations/(?P<conv>[^/]+)/members/(?P<user>[^/]+)$")
_CONVERSATIONS = re.compile(r"^/v3/conversations/?$")
_PAGED = re.compile(r"^/v3/conversations/(?P<conv>[^/]+)/pagedmembers$", re.IGNORECASE)
_TEAM_CHANNELS = re.compile(r"^/v3/teams/(?P<team>[^/]+)/conversations$")
_TOKEN = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")


@dataclass
class TeamsFault:
    method: str  # "POST" | "PUT" | "GET"
    status: int
    retry_after: str | None = None


@dataclass
class Member:
    id: str  # "29:…"
    aad: str
    email: str
    name: str
    role: str = "user"  # Teams' userRole: "user" | "guest"
    tenant: str = TENANT

    def json(self) -> dict[str, Any]:
        account = {
            "id": self.id,
            "aadObjectId": self.aad,
            "name": self.name,
            "givenName": self.name.split()[0],
            "tenantId": self.tenant,
            "userRole": self.role,
        }
        if self.email:  # accounts without a mailbox have neither field
            account |= {"email": self.email, "userPrincipalName": self.email}
        return account


@dataclass
class FakeTeams:
    rosters: dict[str, list[Member]] = field(default_factory=dict)  # conversation -> members
    # team id -> its channels as (id, name); Teams leaves the first channel's name out (None)
    channels: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    app_id: str | None = None  # when set, connector calls must carry the token issued here
    app_password: str = "app-password"
    faults: list[TeamsFault] = field(default_factory=list)
    latency: float = 0.0  # seconds each connector call takes, as over the internet
    calls: list[tuple[str, str]] = field(default_factory=list)
    posted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # conv -> activities
    chats_created: list[dict[str, Any]] = field(default_factory=list)  # POST /v3/conversations
    # (stream id, streamType, when) of every streaming update taken
    stream_updates: list[tuple[str, str, float]] = field(default_factory=list)
    tokens_issued: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LoopbackServer | None = None
    _token: str = field(default_factory=lambda: f"bf-token-{uuid.uuid4().hex}")
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    @property
    def service_url(self) -> str:
        return self.url + "/"

    @property
    def metadata_url(self) -> str:
        return self.url + "/v1/.well-known/openidconfiguration"

    def start(self) -> FakeTeams:
        self._server = LoopbackServer(self._handle)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()

    # -- what the Bot Framework sends the bot -------------------------------------------------

    def sign(self, claims: dict[str, Any] | None = None, key: Any = None, kid: str = KEY_ID) -> str:
        """A Bot Framework channel token for our bot, signed with the published key."""
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": self.app_id,
            "serviceurl": self.service_url,
            "nbf": now - 10,
            "exp": now + 3600,
        } | (claims or {})
        return jwt.encode(body, key or self._key, algorithm="RS256", headers={"kid": kid})

    def next_id(self) -> str:
        with self._lock:
            return f"{int(time.time() * 1000)}{next(self._ids):04d}"

    def activity(
        self,
        text: str,
        member: Member,
        conversation: dict[str, Any],
        channel_data: dict[str, Any],
        mention_bot: bool = True,
        activity_id: str | None = None,
        kind: str = "message",
    ) -> dict[str, Any]:
        """A message activity shaped like Teams sends it."""
        mention = f"<at>{BOT_NAME}</at>"
        entities: list[dict[str, Any]] = [
            {"type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web"}
        ]
        if mention_bot:
            text = f"{mention} {text}"
            entities.insert(
                0,
                {
                    "type": "mention",
                    "text": mention,
                    "mentioned": {"id": BOT_ID, "name": BOT_NAME},
                },
            )
        return {
            "type": kind,
            "id": activity_id or self.next_id(),
            "timestamp": "2026-11-28T01:00:00.000Z",
            "localTimestamp": "2026-11-28T10:00:00.000+09:00",
            "serviceUrl": self.service_url,
            "channelId": "msteams",
            "from": {"id": member.id, "name": member.name, "aadObjectId": member.aad},
            "conversation": conversation,
            "recipient": {"id": BOT_ID, "name": BOT_NAME},
            "textFormat": "plain",
            "text": text.replace("\n", "\r\n"),
            "attachments": [
                {"contentType": "text/html", "content": f"<div><div>{text}</div></div>"}
            ],
            "entities": entities,
            "channelData": channel_data,
            "locale": "en-US",
        }

    def channel_post(self, text: str, member: Member, channel: str, team: str) -> dict[str, Any]:
        """A new post in a channel: Teams names its thread in the conversation id."""
        activity_id = self.next_id()
        return self.activity(
            text,
            member,
            {
                "isGroup": True,
                "conversationType": "channel",
                "tenantId": TENANT,
                "id": f"{channel};messageid={activity_id}",
            },
            {
                "teamsChannelId": channel,
                "teamsTeamId": team,
                "channel": {"id": channel},
                "team": {"id": team},
                "tenant": {"id": TENANT},
            },
            activity_id=activity_id,
        )

    def group_chat_message(self, text: str, member: Member, chat: str) -> dict[str, Any]:
        """A mention of the bot in a group chat (no team, no threads)."""
        return self.activity(
            text,
            member,
            {"isGroup": True, "conversationType": "groupChat", "tenantId": TENANT, "id": chat},
            {"tenant": {"id": TENANT}},
        )

    def members_changed(
        self,
        conversation: str,
        added: list[Member] = (),  # type: ignore[assignment]
        removed: list[Member] = (),  # type: ignore[assignment]
        team: str | None = None,
    ) -> dict[str, Any]:
        """The `conversationUpdate` Teams sends when people join or leave a team or chat."""
        channel_data: dict[str, Any] = {"tenant": {"id": TENANT}}
        if team:
            channel_data |= {
                "team": {"id": team, "name": "Team"},
                "eventType": "teamMemberAdded" if added else "teamMemberRemoved",
            }
        activity: dict[str, Any] = {
            "type": "conversationUpdate",
            "id": f"f:{self.next_id()}",
            "timestamp": "2026-11-28T01:00:00.000Z",
            "serviceUrl": self.service_url,
            "channelId": "msteams",
            "from": {"id": "29:admin", "aadObjectId": "aad-admin"},
            "conversation": {
                "isGroup": True,
                "conversationType": "channel" if team else "groupChat",
                "tenantId": TENANT,
                "id": conversation,
            },
            "recipient": {"id": BOT_ID, "name": BOT_NAME},
            "channelData": channel_data,
        }
        if added:
            activity["membersAdded"] = [{"id": m.id, "aadObjectId": m.aad} for m in added]
        if removed:
            activity["membersRemoved"] = [{"id": m.id, "aadObjectId": m.aad} for m in removed]
        return activity

    def personal_message(self, text: str, member: Member) -> dict[str, Any]:
        return self.activity(
            text,
            member,
            {"conversationType": "personal", "tenantId": TENANT, "id": f"a:1{member.aad}"},
            {"tenant": {"id": TENANT}},
            mention_bot=False,
        )

    # -- what the bot sent --------------------------------------------------------------------

    def bot_messages(self, conversation: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self.posted.get(conversation, [])]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        method = h.command
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        with self._lock:
            self.calls.append((method, path))
        time.sleep(self.latency)
        if method == "GET" and path == "/v1/.well-known/openidconfiguration":
            send_json(h, 200, {"issuer": ISSUER, "jwks_uri": self.url + "/v1/.well-known/keys"})
            return
        if method == "GET" and path == "/v1/.well-known/keys":
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
            key = public | {"kid": KEY_ID, "use": "sig", "endorsements": ["msteams"]}
            send_json(h, 200, {"keys": [key]})
            return
        if method == "POST" and (match := _TOKEN.match(path)):
            self._issue_token(h, raw)
            return
        if self.app_id and h.headers.get("Authorization") != f"Bearer {self._token}":
            send_json(h, 401, {"message": "Authorization has been denied for this request."})
            return
        with self._lock:
            fault = next((f for f in self.faults if f.method == method), None)
            if fault:
                self.faults.remove(fault)
        if fault:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            send_json(h, fault.status, {"error": {"code": "Throttled"}}, headers)
            return
        if method == "POST" and _CONVERSATIONS.match(path):
            self._create_conversation(h, raw)
        elif match := _ACTIVITIES.match(path):
            self._activities(h, method, match["conv"], match["act"], raw)
        elif method == "GET" and (match := _MEMBER.match(path)):
            member = self._member(match["conv"], match["user"])
            if member is None:
                send_json(h, 404, {"error": {"code": "MemberNotFoundInConversation"}})
            else:
                send_json(h, 200, member.json())
        elif method == "GET" and (match := _PAGED.match(path)):
            self._paged(h, match["conv"], query)
        elif method == "GET" and (match := _TEAM_CHANNELS.match(path)):
            if match["team"] not in self.channels:
                send_json(h, 404, {"error": {"code": "NotFound", "message": "team not found"}})
                return
            listed = [{"id": c, "name": n} for c, n in self.channels[match["team"]]]
            send_json(h, 200, {"conversations": listed})
        else:
            send_json(h, 404, {"error": {"code": "NotFound", "message": path}})

    def _issue_token(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != self.app_id
            or form.get("client_secret") != self.app_password
        ):
            send_json(h, 401, {"error": "invalid_client"})
            return
        with self._lock:
            self.tokens_issued += 1
        send_json(h, 200, {"token_type": "Bearer", "expires_in": 3599, "access_token": self._token})

    def _activities(
        self, h: BaseHTTPRequestHandler, method: str, conv: str, act: str | None, raw: bytes
    ) -> None:
        try:
            body = json.loads(raw or b"{}") if method != "DELETE" else {"type": "delete"}
        except ValueError:
            send_json(h, 400, {"error": {"code": "BadSyntax"}})
            return
        if not isinstance(body, dict) or not body.get("type"):
            send_json(h, 400, {"error": {"code": "BadArgument", "message": "Activity needs type"}})
            return
        with self._lock:
            thread = self.posted.setdefault(conv, [])
            if method == "DELETE":
                kept = [a for a in thread if a["id"] != act]
                if len(kept) == len(thread):
                    send_json(h, 404, {"error": {"code": "ActivityNotFound"}})
                    return
                self.posted[conv] = kept
                send_json(h, 200, {})
                return
            if method == "PUT":
                existing = next((a for a in thread if a["id"] == act), None)
                if existing is None:
                    send_json(h, 404, {"error": {"code": "ActivityNotFound"}})
                    return
                edits = existing.get("edits", 0) + 1
                existing.update(
                    body | {"id": act, "edits": edits, "edited_at": time.perf_counter()}
                )
                send_json(h, 200, {"id": act})
                return
            if method != "POST":
                send_json(h, 405, {"error": {"code": "MethodNotAllowed"}})
                return
            info = _stream_info(body)
            if info is not None:
                self._stream(h, conv, thread, body, info, act)
                return
            new_id = f"{int(time.time() * 1000)}{next(self._ids):04d}"
            thread.append(body | {"id": new_id, "replyToId": act or body.get("replyToId")})
        send_json(h, 201, {"id": new_id})

    def _stream(
        self,
        h: BaseHTTPRequestHandler,
        conv: str,
        thread: list[dict[str, Any]],
        body: dict[str, Any],
        info: dict[str, Any],
        reply_to: str | None,
    ) -> None:
        """Teams' streaming rules: one-on-one chats only; a stream starts at sequence 1 and
        each update carries a higher sequence and all the text streamed so far; a final
        message (type message, streamType final) closes it, and nothing may follow."""
        denied = {"error": {"code": "ContentStreamNotAllowed"}}
        if not conv.startswith("a:"):
            send_json(h, 403, denied | {"message": "Content stream is not allowed"})
            return
        kind, stream_id = info.get("streamType"), info.get("streamId")
        if stream_id is None:
            if kind == "final" or body["type"] != "typing" or info.get("streamSequence") != 1:
                send_json(h, 400, {"error": {"code": "BadArgument", "message": "bad stream start"}})
                return
            new_id = f"{int(time.time() * 1000)}{next(self._ids):04d}"
            informative = kind == "informative"  # a progress line, not part of the text
            thread.append(
                body
                | {
                    "id": new_id,
                    "replyToId": reply_to or body.get("replyToId"),
                    "streaming": True,
                    "sequence": 1,
                    "updates": 1,
                    "text": "" if informative else str(body.get("text") or ""),
                    "informative": str(body.get("text") or "") if informative else "",
                }
            )
            self.stream_updates.append((new_id, str(kind), time.time()))
            send_json(h, 201, {"id": new_id})
            return
        stream = next((a for a in thread if a["id"] == stream_id), None)
        if stream is None:
            send_json(h, 404, {"error": {"code": "ActivityNotFound"}})
            return
        if not stream.get("streaming"):
            message = "Content stream is not allowed on an already completed streamed message"
            send_json(h, 403, denied | {"message": message})
            return
        if kind == "final":
            if body["type"] != "message":
                bad = {"code": "BadArgument", "message": "the final update is a message"}
                send_json(h, 400, {"error": bad})
                return
            stream.update(body | {"id": stream_id, "streaming": False})
            send_json(h, 201, {"id": stream_id})
            return
        sequence = int(info.get("streamSequence") or 0)
        text = str(body.get("text") or "")
        cumulative = kind == "informative" or text.startswith(str(stream.get("text") or ""))
        if sequence <= stream["sequence"] or not cumulative:
            message = "Request streamed content should contain the previously streamed content"
            send_json(h, 400, {"error": {"code": "BadArgument", "message": message}})
            return
        if kind == "informative":
            stream.update(informative=text, sequence=sequence, updates=stream["updates"] + 1)
        else:
            stream.update(text=text, sequence=sequence, updates=stream["updates"] + 1)
        self.stream_updates.append((stream_id, str(kind), time.time()))
        send_json(h, 201, {"id": stream_id})

    def personal_chat(self, user_id: str) -> str:
        """The one personal chat between the bot and a user, as Teams names it."""
        return f"a:personal-{user_id.removeprefix('29:')}"

    def _create_conversation(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        """A bot may open (or re-open: the same id comes back) a personal chat with a user of
        its tenant; group conversations cannot be created by bots in Teams."""
        body = json.loads(raw or b"{}")
        members = body.get("members") or []
        tenant = body.get("tenantId") or (body.get("channelData") or {}).get("tenant", {}).get("id")
        if body.get("isGroup") or len(members) != 1 or tenant != TENANT:
            send_json(h, 400, {"error": {"code": "BadArgument", "message": "personal chats only"}})
            return
        with self._lock:
            self.chats_created.append(body)
        send_json(h, 201, {"id": self.personal_chat(members[0]["id"])})

    def _member(self, conv: str, user: str) -> Member | None:
        for member in self.rosters.get(conv.split(";")[0], []):
            if user in (member.id, member.aad):
                return member
        return None

    def _paged(self, h: BaseHTTPRequestHandler, conv: str, query: dict[str, str]) -> None:
        members = self.rosters.get(conv.split(";")[0])
        if members is None:
            send_json(h, 404, {"error": {"code": "ConversationNotFound"}})
            return
        size = max(1, min(int(query.get("pageSize") or 200), 500))
        start = int(query.get("continuationToken") or 0)
        page = members[start : start + size]
        result: dict[str, Any] = {"members": [m.json() for m in page]}
        if start + size < len(members):
            result["continuationToken"] = str(start + size)
        send_json(h, 200, result)


def _stream_info(activity: dict[str, Any]) -> dict[str, Any] | None:
    for entity in activity.get("entities") or []:
        if isinstance(entity, dict) and entity.get("type") == "streaminfo":
            return entity
    return None
