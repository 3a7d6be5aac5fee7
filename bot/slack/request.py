"""Slack requests are checked before anything reads them: signature first, then shape.

Bolt parses a body before it checks the signature, so an unsigned non-JSON body (or a malformed
timestamp) used to cost a 500 and a traceback. Here a request whose signature does not verify
gets 401, a signed but unreadable one 400, each with one log line, and only the rest reach Bolt.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bot import metrics

log = logging.getLogger(__name__)


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
    """slack_sdk's verifier (v0 HMAC, 5 minutes of clock skew), minus its exceptions: it
    parses the timestamp with int() and decodes the body as UTF-8."""
    if not secret or not timestamp.isdigit():
        return False
    try:
        return SignatureVerifier(secret).is_valid(body, timestamp, signature)
    except ValueError:  # a body that is not UTF-8 was not signed by Slack
        return False


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
