"""Inbound Teams requests: is this really the Bot Framework, talking to this bot?

Follows the Bot Framework's connector-to-bot authentication: the bearer token is an RS256 JWT
signed with a key from the JWKS named by the OpenID metadata, issued by the Bot Framework,
addressed to our app id, unexpired (five minutes' leeway), signed with a key endorsed for the
activity's channel, and carrying a `serviceurl` claim equal to the activity's `serviceUrl`
(otherwise a captured token could aim our replies, and our own token, at another host).
The metadata URL is a setting so tests can publish a local key set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt

log = logging.getLogger(__name__)

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
KEYS_MAX_AGE_SECONDS = 24 * 3600
# An unknown key id may mean the keys rolled over; look again, but not more often than this.
UNKNOWN_KEY_REFETCH_SECONDS = 300
LEEWAY_SECONDS = 300


class Unauthorized(Exception):
    """The request does not carry a valid Bot Framework token for this bot."""


class AuthUnavailable(Exception):
    """The signing keys could not be fetched, so no token can be checked right now."""


class BotFrameworkAuth:
    def __init__(self, app_id: str, metadata_url: str) -> None:
        self.app_id = app_id
        self.metadata_url = metadata_url
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def verify(self, authorization: str | None, activity: dict[str, Any]) -> dict[str, Any]:
        """The token's claims, or `Unauthorized` saying (for the log) what was wrong."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("no bearer token")
        try:
            header = jwt.get_unverified_header(token.strip())
        except jwt.PyJWTError as exc:
            raise Unauthorized("not a JWT") from exc
        if header.get("alg") != "RS256":
            raise Unauthorized("not signed with RS256")
        jwk = await self._key(str(header.get("kid") or ""))
        try:
            key = jwt.PyJWK(jwk, algorithm="RS256")
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                key.key,
                algorithms=["RS256"],
                audience=self.app_id,
                issuer=BOT_FRAMEWORK_ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(exc.__class__.__name__) from exc
        endorsements = jwk.get("endorsements")
        if isinstance(endorsements, list) and activity.get("channelId") not in endorsements:
            raise Unauthorized("signing key not endorsed for this channel")
        claimed = str(claims.get("serviceurl") or "").rstrip("/")
        if not claimed or claimed != str(activity.get("serviceUrl") or "").rstrip("/"):
            raise Unauthorized("serviceurl claim does not match the activity")
        return claims

    async def warm(self) -> None:
        """Fetch the keys before the first request needs them (best effort)."""
        try:
            async with self._lock:
                await self._fetch_keys()
        except AuthUnavailable as exc:
            log.warning("%s; will retry on the first request", exc)

    async def _key(self, kid: str) -> dict[str, Any]:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = age > KEYS_MAX_AGE_SECONDS
            unknown = kid not in self._keys and age > UNKNOWN_KEY_REFETCH_SECONDS
            if stale or unknown:
                await self._fetch_keys()
        if kid not in self._keys:
            raise Unauthorized("unknown signing key")
        return self._keys[kid]

    async def _fetch_keys(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                metadata = (await client.get(self.metadata_url)).raise_for_status().json()
                jwks = (await client.get(str(metadata["jwks_uri"]))).raise_for_status().json()
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            if self._keys:  # keep checking against the keys we have
                log.warning("Bot Framework keys refresh failed: %s", exc.__class__.__name__)
                self._fetched_at = time.monotonic()
                return
            raise AuthUnavailable(f"could not fetch Bot Framework signing keys: {exc}") from exc
        self._keys = {str(k["kid"]): k for k in jwks.get("keys", []) if k.get("kid")}
        self._fetched_at = time.monotonic()
