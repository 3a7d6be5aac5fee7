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
from prometheus_client.registry import Collector

from bot import metrics
from bot.dispatch import Dispatcher
from bot.slack import routes as slack_routes
from bot.store import AsyncStore
from bot.teams import routes as teams_routes
from workers.ingest.state import RedisStateStore
from workers.kv import KeyValue, RedisKeyValue
from workers.local_kv import process_store
from workers.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Each chat platform's front door adds its route and start-up hooks; a new platform is one
# package in bot/ with a `mount` and one line here.
FRONT_DOORS = (slack_routes.mount, teams_routes.mount)


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
    return process_store(settings.ragbot_data_dir)


def create_app(settings: Settings, kv: KeyValue | None = None) -> web.Application:
    kv = kv or make_kv(settings)
    store = AsyncStore(kv)
    worker_counters = metrics.WorkerCounters(kv)
    metrics.REGISTRY.register(worker_counters)
    redis_collectors: list[Collector] = []
    if isinstance(kv, RedisKeyValue):  # the queue and the sync state live in Redis
        redis_collectors = [
            metrics.QueueDepth(kv.client),
            metrics.SourceFreshness(RedisStateStore(kv.client)),
        ]
    for collector in redis_collectors:
        metrics.REGISTRY.register(collector)
    dispatcher = Dispatcher(settings)
    app = web.Application(middlewares=[observe], client_max_size=1024 * 1024)
    for mount in FRONT_DOORS:
        mount(app, settings, store, dispatcher)

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
        for collector in redis_collectors:
            metrics.REGISTRY.unregister(collector)

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
        api_key = settings.secret("qdrant_api_key")
        headers = {"api-key": api_key} if api_key else {}
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
