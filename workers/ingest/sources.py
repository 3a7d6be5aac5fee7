"""The sources ragbot indexes, by name: one entry each says which setting turns it on, whether
this deployment configures it, and how to build its connector.

Adding a source is one connector module and one entry here. Connector modules (and their
client libraries) load only when a connector is built, so a front door that lists the
sources for its help text loads none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workers.settings import NotConfigured, Settings

if TYPE_CHECKING:
    from connectors.base import Connector


@dataclass(frozen=True)
class Source:
    name: str
    settings_hint: str  # what to set to turn it on, for error messages
    is_configured: Callable[[Settings], bool]
    build: Callable[[Settings], Connector]


def _files(settings: Settings) -> Connector:
    from connectors.files import FilesConnector

    assert settings.files_path is not None
    return FilesConnector(settings.files_path, settings.parse_limits)


def _confluence(settings: Settings) -> Connector:
    from connectors.confluence import ConfluenceConfig, ConfluenceConnector
    from connectors.confluence_client import ConfluenceClient

    assert settings.confluence_url is not None
    client = ConfluenceClient(
        settings.confluence_url,
        username=settings.confluence_username,
        api_token=settings.secret("confluence_api_token"),
        personal_token=settings.secret("confluence_pat"),
    )
    config = ConfluenceConfig(
        spaces=tuple(settings.confluence_spaces),
        org_domains=tuple(settings.ragbot_org_domains),
        max_attachment_bytes=settings.confluence_max_attachment_mb * 1024 * 1024,
        parse=settings.parse_limits,
    )
    return ConfluenceConnector(client, config)


def _gdrive(settings: Settings) -> Connector:
    from connectors.gdrive import DriveConfig, GoogleDriveConnector
    from connectors.gdrive_client import GoogleClient, GoogleCredentials

    credentials = GoogleCredentials(
        service_account_file=settings.google_service_account_file,
        oauth_user_file=None
        if settings.google_service_account_file
        else settings.google_oauth_credentials_file,
        api_root=settings.google_api_url,
    )
    config = DriveConfig(
        users=tuple(u.lower() for u in settings.google_impersonate),
        drive_ids=tuple(settings.google_drive_ids),
        admin_user=settings.google_admin_user,
        max_file_bytes=settings.google_max_file_mb * 1024 * 1024,
        parse=settings.parse_limits,
    )
    return GoogleDriveConnector(GoogleClient(credentials), config)


REGISTRY: dict[str, Source] = {
    source.name: source
    for source in (
        Source("files", "FILES_PATH", lambda s: s.files_path is not None, _files),
        Source("confluence", "CONFLUENCE_URL", lambda s: bool(s.confluence_url), _confluence),
        Source(
            "gdrive",
            "GOOGLE_*",
            lambda s: bool(s.google_service_account_file or s.google_oauth_credentials_file),
            _gdrive,
        ),
    )
}
SOURCES = tuple(REGISTRY)


def settings_hints() -> str:
    """What turns each source on, for "nothing is configured" messages."""
    hints = [source.settings_hint for source in REGISTRY.values()]
    return f"{', '.join(hints[:-1])} or {hints[-1]}" if len(hints) > 1 else hints[0]


def configured_sources(settings: Settings) -> list[str]:
    """The sources this deployment indexes, in the registry's order."""
    return [name for name, source in REGISTRY.items() if source.is_configured(settings)]


def build_connector(name: str, settings: Settings) -> Connector:
    source = REGISTRY.get(name)
    if source is None:
        raise NotConfigured(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")
    if not source.is_configured(settings):
        raise NotConfigured(f"source {name!r} is not configured (set {source.settings_hint})")
    return source.build(settings)
