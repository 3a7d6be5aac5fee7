"""The Bot Framework connector: the Agents SDK adapter with ragbot's credentials, and retries.

Both the front door (placeholder replies) and the workers (answers) talk to the connector
service at the activity's `serviceUrl` through the SDK's `CloudAdapter`. Its token comes from
the client-credentials grant of the bot's own app registration, fetched here with httpx so the
login endpoint can be pointed elsewhere (sovereign clouds, tests). With no app id the bot is
anonymous (the Bot Framework Emulator) and sends no token.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import httpx
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import AgentAuthConfiguration, TurnContext
from microsoft_agents.hosting.core.authorization import (
    AccessTokenProviderBase,
    ClaimsIdentity,
    Connections,
)

from workers.delivery.chat import DeliveryError
from workers.settings import Settings

log = logging.getLogger(__name__)

BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"
# Multi-tenant registrations get their tokens from the Bot Framework's own tenant.
MULTI_TENANT = "botframework.com"
# Throttled, precondition failed (Teams' "retry this"), and gateway errors are worth retrying.
RETRY_STATUSES = frozenset({412, 429, 502, 503, 504})
ATTEMPTS = 4
MAX_WAIT_SECONDS = 30.0
T = TypeVar("T")


class TeamsServiceError(DeliveryError):
    """Teams refused or could not be reached after retries; `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ClientCredentials:
    """The bot's access token for the connector, cached until five minutes before expiry."""

    def __init__(self, app_id: str, password: str, tenant_id: str | None, login_url: str) -> None:
        self.app_id = app_id
        self._password = password
        self._token_url = f"{login_url.rstrip('/')}/{tenant_id or MULTI_TENANT}/oauth2/v2.0/token"
        self._cached: tuple[float, str] | None = None

    async def token(self) -> str:
        """No lock: two turns racing for a fresh token just fetch it twice."""
        if self._cached and self._cached[0] > time.monotonic():
            return self._cached[1]
        form = {
            "grant_type": "client_credentials",
            "client_id": self.app_id,
            "client_secret": self._password,
            "scope": BOT_FRAMEWORK_SCOPE,
        }
        try:
            async with httpx.AsyncClient(timeout=15) as client:
                response = await client.post(self._token_url, data=form)
                response.raise_for_status()
                body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TeamsServiceError(f"could not get a Bot Framework token: {exc}") from exc
        token = str(body.get("access_token") or "")
        if not token:
            raise TeamsServiceError("the token endpoint returned no access token")
        lifetime = float(body.get("expires_in") or 3600)
        self._cached = (time.monotonic() + max(lifetime - 300, 30), token)
        return token


class _TokenProvider(AccessTokenProviderBase):
    """The SDK's access-token-provider interface over `ClientCredentials` (or anonymous)."""

    def __init__(self, credentials: ClientCredentials | None, config: AgentAuthConfiguration):
        self._credentials = credentials
        self._config = config

    @property
    def configuration(self) -> AgentAuthConfiguration:
        return self._config

    async def get_access_token(
        self, resource_url: str, scopes: list[str], force_refresh: bool = False
    ) -> str:
        # Whatever the SDK asks for, ragbot only ever calls the connector.
        return await self._credentials.token() if self._credentials else ""

    def get_token_credential(self) -> Any:
        raise NotImplementedError("ragbot needs no Azure SDK credential")

    async def acquire_token_on_behalf_of(self, scopes: list[str], user_assertion: str) -> str:
        raise NotImplementedError("ragbot does not sign users in")

    async def get_agentic_application_token(
        self, tenant_id: str, agent_app_instance_id: str
    ) -> str | None:
        raise NotImplementedError("ragbot is not an agentic app")

    async def get_agentic_instance_token(
        self, tenant_id: str, agent_app_instance_id: str
    ) -> tuple[str, str]:
        raise NotImplementedError("ragbot is not an agentic app")

    async def get_agentic_user_token(
        self, tenant_id: str, agent_app_instance_id: str, agentic_user_id: str, scopes: list[str]
    ) -> str | None:
        raise NotImplementedError("ragbot is not an agentic app")


class _Connections(Connections):
    """The SDK's connection-manager interface: one connection, ragbot's own."""

    def __init__(self, provider: _TokenProvider) -> None:
        self._provider = provider

    def get_connection(self, connection_name: str) -> AccessTokenProviderBase:
        return self._provider

    def get_default_connection(self) -> AccessTokenProviderBase:
        return self._provider

    def get_token_provider(
        self, claims_identity: ClaimsIdentity, service_url: str
    ) -> AccessTokenProviderBase:
        return self._provider

    def get_token_provider_from_activity(
        self, claims_identity: ClaimsIdentity, activity: Activity
    ) -> AccessTokenProviderBase:
        return self._provider

    def get_default_connection_configuration(self) -> AgentAuthConfiguration:
        return self._provider.configuration


def make_credentials(settings: Settings) -> ClientCredentials | None:
    """The bot's own credentials, or None when it runs anonymously (no app id)."""
    if not settings.microsoft_app_id:
        return None
    password = settings.microsoft_app_password
    return ClientCredentials(
        settings.microsoft_app_id,
        password.get_secret_value() if password else "",
        settings.microsoft_app_tenant_id,
        settings.microsoft_login_url,
    )


def make_adapter(settings: Settings, credentials: ClientCredentials | None = None) -> CloudAdapter:
    app_id = settings.microsoft_app_id or ""
    credentials = credentials or make_credentials(settings)
    config = AgentAuthConfiguration(
        client_id=app_id or None,
        tenant_id=settings.microsoft_app_tenant_id,
        anonymous_allowed=not app_id,
    )
    adapter = CloudAdapter(connection_manager=_Connections(_TokenProvider(credentials, config)))

    async def on_turn_error(context: TurnContext, error: Exception) -> None:
        # The SDK's default posts the exception text into the chat; never show users that.
        log.error("Teams turn failed: %s", error.__class__.__name__, exc_info=error)

    adapter.on_turn_error = on_turn_error
    return adapter


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    what: str,
    attempts: int = ATTEMPTS,
    max_wait: float = MAX_WAIT_SECONDS,
) -> T:
    """Runs one connector call, retrying throttling and gateway errors with backoff and jitter.

    Honours `Retry-After` up to `max_wait`; other failures raise `TeamsServiceError` at once. The
    front door passes a small budget: Teams re-sends an activity not answered within 15 s.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except aiohttp.ClientResponseError as exc:
            if exc.status not in RETRY_STATUSES or attempt == attempts:
                raise TeamsServiceError(
                    f"Teams {what} failed: HTTP {exc.status}", exc.status
                ) from exc
            wait = min(_retry_after(exc.headers) or _backoff(attempt), max_wait)
            log.info("Teams %s got HTTP %s; retrying in %.1f s", what, exc.status, wait)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if attempt == attempts:
                raise TeamsServiceError(f"Teams {what} unreachable: {exc}") from exc
            wait = min(_backoff(attempt), max_wait)
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(max(float(value), 0.0), MAX_WAIT_SECONDS) if value is not None else None
    except ValueError:
        return None


def _backoff(attempt: int) -> float:
    """Exponential from 0.5 s with full jitter, so throttled workers do not retry in step."""
    return float(random.uniform(0, min(0.5 * 2**attempt, MAX_WAIT_SECONDS)))
