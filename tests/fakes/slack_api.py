"""A fake Slack Web API on loopback, plus signed-request helpers for the Events API.

Answers the methods ragbot calls with Slack's payload shapes, checks the bot token, keeps the
conversation (so `conversations.replies` sees what was posted), records every call, and replays
scripted faults (429 with Retry-After, 5xx). `response_url` posts land in `responses`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.loopback import LoopbackServer, send_json

BOT_USER = "UBOT"
BOT_ID = "BBOT"
TEAM = "T0001"
JSON_PARAMS = {"blocks", "attachments", "chunks", "prompts"}
STREAM_TEXT_LIMIT = 12_000  # characters of markdown_text per streaming call


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers of a request signed with Slack's v0 scheme."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class SlackFault:
    method: str
    status: int
    retry_after: str | None = None


@dataclass
class FakeSlack:
    token: str = "xoxb-test"
    app_token: str = "xapp-test"
    socket_url: str | None = None  # where apps.connections.open sends Socket Mode clients
    users: dict[str, str] = field(default_factory=dict)  # user id -> email
    external_channels: set[str] = field(default_factory=set)
    guests: set[str] = field(default_factory=set)  # user ids of single-channel guests
    # user id -> fields that differ from a full member's users.info record (is_bot, deleted,
    # team_id of another organisation, enterprise_user, ...); an empty email hides it
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # channel -> member ids; a channel not listed has every user in `users` as a member
    members: dict[str, list[str]] = field(default_factory=dict)
    # channel -> the error `conversations.members` gives there (e.g. "missing_scope")
    member_errors: dict[str, str] = field(default_factory=dict)
    faults: list[SlackFault] = field(default_factory=list)
    latency: float = 0.0  # seconds each Web API call takes, as over the internet
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    call_times: list[tuple[str, float]] = field(default_factory=list)  # (method, time.time())
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    responses: list[dict[str, Any]] = field(default_factory=list)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)  # chat.postEphemeral
    # (DM channel, thread ts) -> the assistant thread's status, title and suggested prompts
    assistant_threads: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _ts: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def start(self) -> FakeSlack:
        self._server = LoopbackServer(self._handle)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()

    def next_ts(self) -> str:
        with self._lock:
            return f"{int(time.time())}.{next(self._ts):06d}"

    def user_says(self, channel: str, text: str, user: str, thread_ts: str | None = None) -> str:
        """A person's message, as Slack would store it; returns its ts."""
        ts = self.next_ts()
        message = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "thread_ts": thread_ts or ts,
        }
        self.messages.setdefault(channel, []).append(message)
        return ts

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    def bot_messages(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.get(channel, []) if m.get("bot_id") == BOT_ID]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length).decode() if length else ""
        path, _, query = h.path.partition("?")
        if path.startswith("/respond/"):
            self.responses.append(json.loads(raw or "{}"))
            return send_json(h, 200, {"ok": True})
        method = path.removeprefix("/api/")
        params: dict[str, Any] = dict(parse_qsl(query))
        if raw:
            if "json" in (h.headers.get("Content-Type") or ""):
                params.update(json.loads(raw))
            else:
                params.update(dict(parse_qsl(raw)))
        for key in JSON_PARAMS & params.keys():
            if isinstance(params[key], str):
                params[key] = json.loads(params[key])
        with self._lock:
            self.calls.append((method, params))
            self.call_times.append((method, time.time()))
        time.sleep(self.latency)
        expected = self.app_token if method == "apps.connections.open" else self.token
        if h.headers.get("Authorization") != f"Bearer {expected}":
            return send_json(h, 200, {"ok": False, "error": "invalid_auth"})
        for fault in list(self.faults):
            if fault.method == method:
                self.faults.remove(fault)
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                error = "ratelimited" if fault.status == 429 else "internal_error"
                return send_json(h, fault.status, {"ok": False, "error": error}, headers)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return send_json(h, 200, {"ok": False, "error": "unknown_method"})
        return send_json(h, 200, handler(params))

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "user": "ragbot",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user", "")
        if user == BOT_USER:
            return {"ok": True, "user": {"id": user, "team_id": TEAM, "is_bot": True}}
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        record = {
            "id": user,
            "team_id": TEAM,
            "is_bot": False,
            "deleted": False,
            "is_restricted": user in self.guests,
            "is_ultra_restricted": user in self.guests,
            "profile": {"real_name": user},
        } | self.accounts.get(user, {})
        if self.users[user]:  # without users:read.email (or for some bots) there is none
            record["profile"] = record["profile"] | {"email": self.users[user]}
        return {"ok": True, "user": record}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel", "")
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "is_channel": channel.startswith("C"),
                "is_im": channel.startswith("D"),
                "is_mpim": channel.startswith("G"),
                "is_shared": channel in self.external_channels,
                "is_ext_shared": channel in self.external_channels,
            },
        }

    def _conversations_members(self, params: dict[str, Any]) -> dict[str, Any]:
        """Paged like Slack: `limit` per page, an opaque cursor to the next one."""
        channel = params.get("channel", "")
        if channel in self.member_errors:
            return {"ok": False, "error": self.member_errors[channel]}
        everyone = self.members.get(channel, [BOT_USER, *self.users])
        start = int(params.get("cursor") or 0)
        limit = int(params.get("limit") or 100)
        page = everyone[start : start + limit]
        following = str(start + limit) if start + limit < len(everyone) else ""
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": following}}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel", ""), params.get("ts", "")
        thread = [
            m
            for m in self.messages.get(channel, [])
            if m.get("thread_ts", m["ts"]) == ts or m["ts"] == ts
        ]
        return {
            "ok": True,
            "messages": sorted(thread, key=lambda m: float(m["ts"])),
            "has_more": False,
        }

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel", "")
        ts = self.next_ts()
        message = {
            "type": "message",
            "bot_id": BOT_ID,
            "user": BOT_USER,
            "ts": ts,
            "text": params.get("text", ""),
            "blocks": params.get("blocks", []),
            "thread_ts": params.get("thread_ts") or ts,
        }
        self.messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel", ""), params.get("ts", "")
        for message in self.messages.get(channel, []):
            if message["ts"] == ts and message.get("streaming"):
                return {"ok": False, "error": "cant_update_message"}  # stop the stream first
            if message["ts"] == ts:
                message.update(
                    text=params.get("text", ""),
                    blocks=params.get("blocks", []),
                    edited={"user": BOT_USER, "ts": self.next_ts()},
                )
                return {"ok": True, "channel": channel, "ts": ts, "text": message["text"]}
        return {"ok": False, "error": "message_not_found"}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.socket_url is None:
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": True, "url": self.socket_url}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        """Seen by `user` alone, and only if they are in the channel, as Slack requires."""
        channel, user = params.get("channel", ""), params.get("user", "")
        if user not in self.members.get(channel, [BOT_USER, *self.users]):
            return {"ok": False, "error": "user_not_in_channel"}
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "thread_ts": params.get("thread_ts"),
                "text": params.get("text", ""),
                "blocks": params.get("blocks", []),
            }
        )
        return {"ok": True, "message_ts": self.next_ts()}

    # -- the assistant side panel (assistant.threads.*) -------------------------------------

    def _assistant_thread(self, params: dict[str, Any]) -> dict[str, Any] | str:
        channel, thread_ts = params.get("channel_id", ""), params.get("thread_ts", "")
        if not channel or not thread_ts:
            return "invalid_arguments"
        if not channel.startswith("D"):
            return "channel_type_not_supported"  # assistant threads live in the app's DMs
        return self.assistant_threads.setdefault((channel, thread_ts), {})

    def _assistant_threads_setStatus(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = self._assistant_thread(params)
        if isinstance(thread, str):
            return {"ok": False, "error": thread}
        thread["status"] = params.get("status", "")
        thread.setdefault("statuses", []).append(thread["status"])
        return {"ok": True}

    def _assistant_threads_setTitle(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = self._assistant_thread(params)
        if isinstance(thread, str):
            return {"ok": False, "error": thread}
        thread["title"] = params.get("title", "")
        return {"ok": True}

    def _assistant_threads_setSuggestedPrompts(self, params: dict[str, Any]) -> dict[str, Any]:
        prompts = params.get("prompts")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            return {"ok": False, "error": "invalid_arguments"}  # one to four prompts
        thread = self._assistant_thread(params)
        if isinstance(thread, str):
            return {"ok": False, "error": thread}
        thread["prompts"], thread["prompts_title"] = prompts, params.get("title")
        return {"ok": True}

    # -- streaming (chat.startStream / appendStream / stopStream) ---------------------------

    def _chat_startStream(self, params: dict[str, Any]) -> dict[str, Any]:
        """A new message in the thread that grows as text is appended, until stopped."""
        channel, thread_ts = params.get("channel", ""), params.get("thread_ts")
        if not thread_ts:
            return {"ok": False, "error": "invalid_arguments"}
        if not channel.startswith("D") and not (
            params.get("recipient_user_id") and params.get("recipient_team_id")
        ):
            return {"ok": False, "error": "invalid_arguments"}  # required outside DMs
        text = str(params.get("markdown_text") or "")
        if len(text) > STREAM_TEXT_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        ts = self.next_ts()
        message = {
            "type": "message",
            "bot_id": BOT_ID,
            "user": BOT_USER,
            "ts": ts,
            "text": text,
            "blocks": [],
            "thread_ts": thread_ts,
            "streaming": True,
            "appends": 0,
        }
        with self._lock:
            self.messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts}

    def _streaming(self, params: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        channel, ts = params.get("channel", ""), params.get("ts", "")
        for message in self.messages.get(channel, []):
            if message["ts"] == ts:
                if not message.get("streaming"):
                    return None, "message_not_in_streaming_state"
                return message, None
        return None, "message_not_found"

    def _chat_appendStream(self, params: dict[str, Any]) -> dict[str, Any]:
        message, error = self._streaming(params)
        if message is None:
            return {"ok": False, "error": error}
        text = str(params.get("markdown_text") or "")
        if len(text) > STREAM_TEXT_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        with self._lock:
            message["text"] += text
            message["appends"] += 1
        return {"ok": True, "channel": params.get("channel"), "ts": message["ts"]}

    def _chat_stopStream(self, params: dict[str, Any]) -> dict[str, Any]:
        message, error = self._streaming(params)
        if message is None:
            return {"ok": False, "error": error}
        with self._lock:
            message["text"] += str(params.get("markdown_text") or "")
            message["blocks"] = list(params.get("blocks") or [])
            message["streaming"] = False
        return {"ok": True, "channel": params.get("channel"), "ts": message["ts"]}

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel", ""), params.get("ts", "")
        with self._lock:
            kept = [m for m in self.messages.get(channel, []) if m["ts"] != ts]
            if len(kept) == len(self.messages.get(channel, [])):
                return {"ok": False, "error": "message_not_found"}
            self.messages[channel] = kept
        return {"ok": True, "channel": channel, "ts": ts}
