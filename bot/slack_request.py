"""Slack requests are checked before anything reads them: signature first, then shape.

Bolt parses a body before it checks the signature, so an unsigned non-JSON body (or a malformed
timestamp) used to cost a 500 and a traceback. Here a request whose signature does not verify
gets 401, a signed but unreadable one 400, each with one log line, and only the rest reach Bolt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from urllib.parse import parse_qsl

from aiohttp import web

from bot import metrics

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW_SECONDS = 5 * 60


def refusal(body: bytes, headers: dict[str, str], secret: str) -> web.Response | None:
    """The response that refuses this request, or None when it may go on to Bolt."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not _signed(body, timestamp, signature, secret):
        log.warning("Slack request refused: missing, stale or wrong signature")
        metrics.IGNORED.labels("slack", "unsigned").inc()
        return web.json_response({"error": "invalid signature"}, status=401)
    if not _readable(body, headers.get("content-type", "")):
        log.warning("Slack request refused: signed but not a Slack payload")
        metrics.IGNORED.labels("slack", "malformed").inc()
        return web.json_response({"error": "malformed request"}, status=400)
    return None


def _signed(body: bytes, timestamp: str, signature: str, secret: str) -> bool:
    if not secret or not timestamp.isdigit() or not signature.startswith("v0="):
        return False
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _readable(body: bytes, content_type: str) -> bool:
    """Bolt's own parsing rules, without its exceptions: a JSON object or a form."""
    try:
        text = body.decode("utf-8")
        if content_type.startswith("application/json") or text.startswith("{"):
            return isinstance(json.loads(text), dict)
        form = dict(parse_qsl(text, keep_blank_values=True))
        if "payload" in form:
            return isinstance(json.loads(form["payload"]), dict)
        return bool(form)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        return False
