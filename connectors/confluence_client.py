"""Talking to Confluence's REST API (v1, shared by Cloud and Data Center) over httpx.

Cloud authenticates with email + API token (basic), Data Center with a personal access token
(Bearer). 429 and 503 honour Retry-After (clamped), other 5xx back off exponentially and halve
the page size, and every call gives up after a bounded time with a ConnectorError, so an outage
leaves the index as it was. v1 `_links.next` is relative to `_links.base` minus its context path.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.base import ConnectorError

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 60.0
MIN_PAGE_SIZE = 5


class ConfluenceClient:
    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        api_token: str | None = None,
        personal_token: str | None = None,
        give_up_after_seconds: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.personal_token = personal_token  # set: Data Center, whose API differs in places
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if personal_token:
            headers["Authorization"] = f"Bearer {personal_token}"
        elif username and api_token:
            auth = httpx.BasicAuth(username, api_token)
        else:
            raise ConnectorError(
                "Confluence needs CONFLUENCE_PAT, or CONFLUENCE_USERNAME and CONFLUENCE_API_TOKEN"
            )
        self._http = httpx.Client(
            headers=headers, auth=auth, timeout=30.0, follow_redirects=False, transport=transport
        )
        self.give_up_after = give_up_after_seconds
        self._sleep = sleep
        self.requests = 0

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON resource by API path ("/rest/api/…") or by absolute URL."""
        url = path if path.startswith("http") else self.base_url + path
        deadline = time.monotonic() + self.give_up_after
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                response = self._http.get(url, params=params)
            except httpx.HTTPError as exc:
                wait = self._backoff(attempt)
                if time.monotonic() + wait > deadline:
                    raise ConnectorError(
                        f"Confluence is unreachable: {exc.__class__.__name__}"
                    ) from exc
                self._sleep(wait)
                continue
            if response.status_code in (401, 403):
                raise ConnectorError(
                    f"Confluence refused the credentials (HTTP {response.status_code})"
                )
            if response.status_code == 404:
                raise ConnectorError(f"Confluence has no {urlsplit(url).path}")
            if response.status_code in (429, 503) or response.status_code >= 500:
                wait = self._retry_after(response) or self._backoff(attempt)
                if time.monotonic() + wait > deadline:
                    raise ConnectorError(
                        f"Confluence kept failing (HTTP {response.status_code}); gave up after "
                        f"{self.give_up_after:.0f} s"
                    )
                log.info("Confluence HTTP %d, retrying in %.1f s", response.status_code, wait)
                self._sleep(wait)
                if params and "limit" in params and response.status_code >= 500:
                    params = {**params, "limit": max(int(params["limit"]) // 2, MIN_PAGE_SIZE)}
                continue
            if response.status_code >= 400:
                raise ConnectorError(f"Confluence rejected a request (HTTP {response.status_code})")
            try:
                data: dict[str, Any] = response.json()
            except ValueError as exc:
                raise ConnectorError("Confluence returned something that is not JSON") from exc
            return data

    def download(self, path: str, max_bytes: int) -> bytes:
        """Bytes of an attachment. Cloud answers 302 to a media host: that request goes without
        our Authorization header (the redirect URL carries its own short-lived token)."""
        url = self.base_url + path
        self.requests += 1
        try:
            response = self._http.get(url)
            if response.is_redirect:
                target = httpx.URL(response.headers["Location"])
                target = target if target.is_absolute_url else httpx.URL(url).join(target)
                if target.host == httpx.URL(url).host and target.port == httpx.URL(url).port:
                    response = self._http.get(target)
                else:
                    response = httpx.get(target, timeout=60.0, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise ConnectorError(f"attachment download failed: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise ConnectorError(f"attachment download failed (HTTP {response.status_code})")
        if len(response.content) > max_bytes:
            raise ConnectorError("attachment is larger than the size limit")
        return response.content

    def paginate(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every result of a paged v1 collection, following `_links.next`."""
        page = self.get(path, params)
        while True:
            yield from page.get("results", [])
            links = page.get("_links", {})
            next_link = links.get("next")
            if not next_link:
                return
            page = self.get(self._absolute(next_link, links))

    def _absolute(self, link: str, links: dict[str, Any]) -> str:
        if link.startswith("http"):
            return link
        # v1 links are relative to the site root plus context path ("/wiki" on Cloud);
        # v2 links already include the context.
        base = str(links.get("base") or self.base_url).rstrip("/")
        context = str(links.get("context") or urlsplit(base).path).rstrip("/")
        if context and link.startswith(context + "/"):
            base = base[: len(base) - len(context)]
        return base + link

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After")
        try:
            seconds = float(value) if value is not None else None
        except ValueError:
            return None
        return None if seconds is None else min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(min(2 ** (attempt - 1), 30)) * (0.5 + random.random() / 2)
