"""A Bolt app that acknowledges mentions and does nothing else: the floor the front door's
footprint is compared with (benchmarks/front_door_footprint.py). It imports nothing of
ragbot, so its memory and start time are Bolt's and aiohttp's alone.

Usage: python -m benchmarks.bare_bolt PORT   (SLACK_BOT_TOKEN and SLACK_API_URL from the
environment; the signing secret is the benchmarks' own)
"""

from __future__ import annotations

import os
import sys

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

SECRET = "bench-secret"


def main(port: int) -> None:
    """A Bolt app that acknowledges mentions and does nothing else: the floor to compare with."""
    client = AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
    )
    app = AsyncApp(client=client, signing_secret=SECRET, process_before_response=False)

    @app.event("app_mention")
    async def on_mention() -> None:
        return None

    async def events(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    server = web.Application()
    server.router.add_post("/slack/events", events)
    server.router.add_get("/healthz", health)
    web.run_app(server, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
