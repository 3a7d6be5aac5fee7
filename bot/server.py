"""The HTTP front door: one aiohttp app for Slack, Teams, health, readiness and metrics.

It never opens the embedded index when `REDIS_URL` is set: the workers own it, and readiness
checks Redis (and a Qdrant server when `QDRANT_URL` is set).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot import metrics
from bot.dispatch import Dispatcher
from bot.slack import request as slack_request
from bot.slack.front_door import SlackFrontDoor
from bot.store import AsyncStore
from workers.kv import KeyValue, MemoryKeyValue, RedisKeyValue
from workers.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = (
        request.match_info.route.resource.canonical
        if request.match_info.route.resource
        else "unknown"
    )
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.HTTP_REQUESTS.labels(route, str(status)).inc()
        metrics.HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)


def make_kv(settings: Settings) -> KeyValue:
    if settings.redis_url:
        import redis

        return RedisKeyValue(
            redis.Redis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)
        )
    return MemoryKeyValue()


def create_app(settings: Settings, kv: KeyValue | None = None) -> web.Application:
    kv = kv or make_kv(settings)
    store = AsyncStore(kv)
    worker_counters = metrics.WorkerCounters(kv)
    metrics.REGISTRY.register(worker_counters)
    dispatcher = Dispatcher(settings)
    app = web.Application(middlewares=[observe], client_max_size=1024 * 1024)
    slack = None
    slack_secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    )
    if settings.slack_bot_token and (settings.slack_signing_secret or settings.slack_app_token):
        slack = SlackFrontDoor(settings, store, dispatcher)
    else:
        log.warning(
            "Slack is off: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN)"
        )

    teams = None
    if settings.microsoft_app_id or settings.ragbot_teams_dev:
        # Slow to import: loaded only when Teams is on. Refuses to start when misconfigured.
        from bot.teams.front_door import TeamsFrontDoor

        teams = TeamsFrontDoor(settings, store, dispatcher)
    else:
        log.warning("Teams is off: set MICROSOFT_APP_ID and MICROSOFT_APP_TENANT_ID")

    async def slack_events(request: web.Request) -> web.StreamResponse:
        if slack is None:
            return web.json_response({"error": "Slack is not configured"}, status=404)
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        refused = slack_request.refusal(body, headers, slack_secret)
        if refused is not None:
            return refused
        response = await slack.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def teams_messages(request: web.Request) -> web.StreamResponse:
        if teams is None:
            return web.json_response({"error": "Teams is not configured"}, status=404)
        return await teams.handle(request)

    async def healthz(request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.StreamResponse:
        failing = await unready_dependencies(settings)
        if failing:
            return web.json_response({"status": "unavailable", "failing": failing}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics_page(request: web.Request) -> web.StreamResponse:
        # The workers' counters come from Redis: read off the event loop.
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, generate_latest, metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def close_dispatcher(_: web.Application) -> None:
        dispatcher.close()
        store.close()
        metrics.REGISTRY.unregister(worker_counters)

    if slack is not None and settings.slack_app_token is not None:
        # Socket Mode: Slack delivers over a websocket this process opens; no public URL needed.
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        app_token = settings.slack_app_token.get_secret_value()
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

    app.router.add_post("/slack/events", slack_events)
    app.router.add_post("/api/messages", teams_messages)
    if teams is not None:
        app.on_startup.append(teams.warm)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    app.on_startup.append(dispatcher.warm)
    app.on_cleanup.append(close_dispatcher)
    return app


async def unready_dependencies(settings: Settings) -> list[str]:
    failing: list[str] = []
    if settings.redis_url:
        client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=1)
        try:
            await client.ping()
        except (aioredis.RedisError, OSError):
            failing.append("redis")
        finally:
            await client.aclose()
    if settings.qdrant_url:
        headers = (
            {"api-key": settings.qdrant_api_key.get_secret_value()}
            if settings.qdrant_api_key
            else {}
        )
        url = settings.qdrant_url.rstrip("/") + "/readyz"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(url, headers=headers) as response,
            ):
                if response.status != 200:
                    failing.append("qdrant")
        except (aiohttp.ClientError, TimeoutError):
            failing.append("qdrant")
    return failing


def serve(settings: Settings, host: str, port: int) -> None:
    web.run_app(create_app(settings), host=host, port=port, access_log=None, print=None)
