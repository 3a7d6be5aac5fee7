"""Slack's place in the HTTP front door: `POST /slack/events` (signature checked, then Bolt),
or a Socket Mode connection when `SLACK_APP_TOKEN` is set. Off (404) without a bot token."""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.dispatch import Dispatcher
from bot.slack import request as slack_request
from bot.slack.front_door import SlackFrontDoor
from bot.store import AsyncStore
from workers.settings import Settings

log = logging.getLogger(__name__)


def mount(
    app: web.Application, settings: Settings, store: AsyncStore, dispatch: Dispatcher
) -> None:
    slack = None
    if settings.slack_bot_token and (settings.slack_signing_secret or settings.slack_app_token):
        slack = SlackFrontDoor(settings, store, dispatch)
    else:
        log.warning(
            "Slack is off: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN)"
        )

    async def slack_events(request: web.Request) -> web.StreamResponse:
        if slack is None:
            return web.json_response({"error": "Slack is not configured"}, status=404)
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        refused = slack_request.refusal(body, headers, slack.signing_secret)
        if refused is not None:
            return refused
        response = await slack.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    app.router.add_post("/slack/events", slack_events)
    app_token = settings.secret("slack_app_token")
    if slack is not None and app_token is not None:
        _connect_socket_mode(app, slack, app_token)


def _connect_socket_mode(app: web.Application, slack: SlackFrontDoor, app_token: str) -> None:
    """Socket Mode: Slack delivers over a websocket this process opens; no public URL needed."""
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    handlers: list[AsyncSocketModeHandler] = []

    async def open_socket(_: web.Application) -> None:
        # Built here: its aiohttp session must belong to the running event loop.
        handlers.append(AsyncSocketModeHandler(slack.app, app_token))
        await handlers[0].connect_async()  # type: ignore[no-untyped-call]

    async def close_socket(_: web.Application) -> None:
        for handler in handlers:
            await handler.close_async()  # type: ignore[no-untyped-call]

    app.on_startup.append(open_socket)
    app.on_cleanup.append(close_socket)
