"""Teams' place in the HTTP front door: `POST /api/messages`. Off (404) without
`MICROSOFT_APP_ID` unless `RAGBOT_TEAMS_DEV` is set; the Agents SDK loads only when it is on."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.dispatch import Dispatcher
from bot.store import AsyncStore
from workers.settings import Settings

log = logging.getLogger(__name__)


def mount(
    app: web.Application, settings: Settings, store: AsyncStore, dispatch: Dispatcher
) -> None:
    teams = None
    if settings.microsoft_app_id or settings.ragbot_teams_dev:
        # Slow to import: loaded only when Teams is on. Refuses to start when misconfigured.
        from bot.teams.front_door import TeamsFrontDoor

        teams = TeamsFrontDoor(settings, store, dispatch)
        app.on_startup.append(teams.warm)
    else:
        log.warning("Teams is off: set MICROSOFT_APP_ID and MICROSOFT_APP_TENANT_ID")

    async def teams_messages(request: web.Request) -> web.StreamResponse:
        if teams is None:
            return web.json_response({"error": "Teams is not configured"}, status=404)
        return await teams.handle(request)

    app.router.add_post("/api/messages", teams_messages)
