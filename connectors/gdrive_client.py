"""Google Drive and Admin Directory over google-api-python-client: auth, retries, paging.

Auth is a service account with domain-wide delegation (acting as each impersonated user) or an
OAuth user's authorized-user file. Discovery documents are the static ones bundled with the
library (no download); `api_root` replaces `https://www.googleapis.com` for the APIs and the
token endpoint alike (tests, proxies). httplib2 is not thread-safe, so each thread builds its
own service objects. Retries are the library's: 5xx, 429 and 403 rate-limit reasons, with
jittered exponential backoff, five times at most (about a minute in total at worst).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from connectors.base import ConnectorError

DRIVE_SCOPES = ("https://www.googleapis.com/auth/drive.readonly",)
DIRECTORY_SCOPES = (
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
)
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
RETRIES = 5
TIMEOUT_SECONDS = 60


class DriveApiError(ConnectorError):
    """Google answered with an error; `status` and `reason` say which (e.g. 403, quota)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class GoogleCredentials:
    """Where the keys come from; exactly one of the two files."""

    service_account_file: Path | None = None
    oauth_user_file: Path | None = None
    api_root: str | None = None  # instead of https://www.googleapis.com, token URI included

    def load(self, scopes: tuple[str, ...], subject: str | None) -> Any:
        try:
            if self.service_account_file is not None:
                info = json.loads(self.service_account_file.read_text(encoding="utf-8"))
                info["token_uri"] = self._token_uri(info)
                found = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    info, scopes=list(scopes)
                )
                return found.with_subject(subject) if subject else found
            if self.oauth_user_file is not None:
                info = json.loads(self.oauth_user_file.read_text(encoding="utf-8"))
                # Built field by field: the library's loader always uses Google's token URI.
                return user_credentials.Credentials(  # type: ignore[no-untyped-call]
                    token=None,
                    refresh_token=info["refresh_token"],
                    client_id=info["client_id"],
                    client_secret=info["client_secret"],
                    token_uri=self._token_uri(info),
                    scopes=list(scopes),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise ConnectorError(f"Google credentials could not be read: {exc}") from exc
        raise ConnectorError(
            "set GOOGLE_SERVICE_ACCOUNT_FILE or GOOGLE_OAUTH_CREDENTIALS_FILE for Google Drive"
        )

    def _token_uri(self, info: dict[str, Any]) -> str:
        if self.api_root:
            return self.api_root.rstrip("/") + "/token"
        return str(info.get("token_uri") or GOOGLE_TOKEN_URI)


class GoogleClient:
    def __init__(self, credentials: GoogleCredentials) -> None:
        self.credentials = credentials
        self._local = threading.local()

    def drive(self, user: str | None) -> Any:
        """The Drive v3 service acting as `user` (None: the OAuth user or the account itself)."""
        return self._service("drive", "v3", DRIVE_SCOPES, user)

    def directory(self, admin: str) -> Any:
        return self._service("admin", "directory_v1", DIRECTORY_SCOPES, admin)

    def _service(self, name: str, version: str, scopes: tuple[str, ...], user: str | None) -> Any:
        cache: dict[tuple[str, str | None], Any] = self._local.__dict__.setdefault("services", {})
        key = (name, user)
        if key not in cache:
            http = google_auth_httplib2.AuthorizedHttp(
                self.credentials.load(scopes, user), http=httplib2.Http(timeout=TIMEOUT_SECONDS)
            )
            options = None
            if self.credentials.api_root:
                # Drive's paths are relative to /drive/v3/; the directory's carry their prefix.
                path = "drive/v3/" if name == "drive" else ""
                options = {"api_endpoint": f"{self.credentials.api_root.rstrip('/')}/{path}"}
            cache[key] = build(
                name, version, http=http, static_discovery=True, client_options=options
            )
        return cache[key]

    @staticmethod
    def execute(request: Any) -> Any:
        """Runs one request with the library's retries; errors become `DriveApiError`."""
        try:
            return request.execute(num_retries=RETRIES)
        except HttpError as exc:
            status = int(exc.resp.status)
            reason = _reason(exc)
            raise DriveApiError(
                f"Google API {status} {reason or ''}".strip(), status, reason
            ) from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            raise ConnectorError(f"Google rejected the credentials: {exc}") from exc
        except (OSError, httplib2.HttpLib2Error) as exc:
            raise ConnectorError(f"Google API unreachable: {exc}") from exc

    def pages(self, make_request: Callable[[str | None], Any], items: str) -> Iterator[Any]:
        """Every item of a paged list: `make_request(page_token)` builds each page's request."""
        token: str | None = None
        while True:
            page = self.execute(make_request(token))
            yield from page.get(items) or []
            token = page.get("nextPageToken")
            if not token:
                return


def _reason(exc: HttpError) -> str:
    try:
        body = json.loads(exc.content.decode("utf-8"))
        errors = body.get("error", {}).get("errors") or []
        return str(errors[0].get("reason") or "") if errors else ""
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""
