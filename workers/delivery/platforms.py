"""The chat platforms answers go to, by name: one entry each says how a worker reaches the
platform and turns a job's payload into the thread to answer in.

Adding a platform is one delivery module and one entry here; the tasks never name a platform.
Platform modules (and their SDKs) load only when a job for that platform arrives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workers.settings import NotConfigured, Settings

if TYPE_CHECKING:
    from workers.delivery.chat import ChatThread
    from workers.kv import KeyValue

Payload = dict[str, Any]


@dataclass(frozen=True)
class Platform:
    name: str
    # The platform's client for one worker process (built once, on first use).
    connect: Callable[[Settings, KeyValue], Any]
    # The thread a question's answer goes to.
    thread: Callable[[Any, Payload], ChatThread]
    # A message in a conversation outside any answer: an admin command's reply (Slack's slash
    # commands hand the worker a response_url instead) or the weekly gaps digest.
    notify: Callable[[Any, Payload, str], None] | None = None


def _slack_client(settings: Settings, kv: KeyValue) -> Any:
    from workers.delivery.slack import SlackDelivery, make_web_client

    token = settings.secret("slack_bot_token")
    if token is None:
        raise NotConfigured("SLACK_BOT_TOKEN is not set")
    client = make_web_client(token, settings.slack_api_url)
    return SlackDelivery(client, kv, settings.ragbot_membership_ttl_seconds)


def _slack_thread(client: Any, payload: Payload) -> ChatThread:
    from workers.delivery.slack import SlackThread
    from workers.delivery.slack_question import SlackQuestion

    return SlackThread(SlackQuestion.from_payload(payload), client)


def _slack_notify(client: Any, payload: Payload, text: str) -> None:
    from workers.delivery.slack_question import SlackQuestion

    client.announce(SlackQuestion.from_payload(payload), text)


def _teams_client(settings: Settings, kv: KeyValue) -> Any:
    from workers.delivery.teams import TeamsDelivery

    return TeamsDelivery(settings, kv)


def _teams_thread(client: Any, payload: Payload) -> ChatThread:
    from workers.delivery.teams import TeamsThread
    from workers.delivery.teams_question import TeamsQuestion

    return TeamsThread(TeamsQuestion.from_payload(payload), client)


def _teams_notify(client: Any, payload: Payload, text: str) -> None:
    from workers.delivery.teams_question import TeamsQuestion

    client.notify(TeamsQuestion.from_payload(payload), text)


REGISTRY: dict[str, Platform] = {
    platform.name: platform
    for platform in (
        Platform("slack", _slack_client, _slack_thread, _slack_notify),
        Platform("teams", _teams_client, _teams_thread, _teams_notify),
    )
}


class Deliveries:
    """Each platform's client in one worker process, built on first use and then shared."""

    def __init__(self, settings: Settings, kv: KeyValue) -> None:
        self.settings = settings
        self.kv = kv
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _platform(self, name: str) -> Platform:
        platform = REGISTRY.get(name)
        if platform is None:
            raise ValueError(f"unknown chat platform {name!r}")
        return platform

    def client(self, name: str) -> Any:
        platform = self._platform(name)
        with self._lock:
            if name not in self._clients:
                self._clients[name] = platform.connect(self.settings, self.kv)
            return self._clients[name]

    def thread(self, name: str, payload: Payload) -> ChatThread:
        """The question's thread on its platform."""
        return self._platform(name).thread(self.client(name), payload)

    def notify(self, name: str, payload: Payload, text: str) -> None:
        notify = self._platform(name).notify
        if notify is None:
            raise ValueError(f"{name} replies to commands through a reply address")
        notify(self.client(name), payload, text)
