"""Slack listeners (Bolt): mentions, DMs, thread follow-ups, `/ragbot`, feedback buttons.

Bolt verifies each request's signature and acknowledges events at once; the listeners then
claim the question in Redis (so Slack's retries and the `app_mention` + `message` pair for one
message answer once), post a "Searching…" placeholder in the thread and enqueue the answer.
"""

from __future__ import annotations

import logging
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncAssistant
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot import admin, metrics
from bot.dispatch import Dispatcher
from bot.intake import Intake
from bot.store import AsyncStore
from workers import jobs
from workers.conversation_settings import slack_conversation
from workers.delivery.membership import (
    GENERATION_SECONDS,
    generation_key,
    new_generation,
    slack_scope,
)
from workers.delivery.slack_question import SlackQuestion
from workers.kv import StoreUnavailable
from workers.settings import Settings

log = logging.getLogger(__name__)

PLACEHOLDER = "Searching the docs… :mag:"
STATUS = "is searching the docs…"  # the assistant panel's "<app> is searching the docs…"
SUGGESTED_TITLE = "Ask me about our docs"
MAX_SUGGESTED_PROMPTS = 4  # Slack shows at most four
TITLE_CHARS = 80
THREAD_MEMORY_SECONDS = 7 * 86400
# Message subtypes that are still a person asking; everything else (edits, deletions, joins,
# bot messages) is ignored.
QUESTION_SUBTYPES = {None, "file_share", "thread_broadcast"}
HELP = (
    "*Ask me about our docs:* mention me in a channel, DM me, or reply in a thread I answered.\n"
    "`/ragbot ask <question>` answers just for you.\n"
    f"Admins: `/ragbot status` · `/ragbot reindex [{admin.SOURCE_CHOICES}] [--full]` · "
    "`/ragbot updates on|off` (answer updates in this channel) · "
    "`/ragbot scope [list|add|remove] <place>` (what this channel answers from) · "
    "`/ragbot doc [list|boost|bury|hide|reset] <link>` · `/ragbot gaps [days|weekly on|off]`"
)
ADMIN_VERBS = ("status", "reindex", "updates", "scope", "doc", "gaps")
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def question_text(text: str) -> str:
    return _MENTION.sub("", text or "").strip()


class SlackFrontDoor:
    def __init__(self, settings: Settings, store: AsyncStore, dispatcher: Dispatcher) -> None:
        self.settings = settings
        self.store = store
        self.intake = Intake("slack", store, dispatcher, settings)
        assert settings.slack_bot_token is not None
        # Socket Mode needs no signing secret; over HTTP, an empty one rejects every request.
        self.signing_secret = settings.secret("slack_signing_secret") or ""
        client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
        self.app = AsyncApp(
            client=client,
            signing_secret=self.signing_secret,
            process_before_response=False,
        )
        self.app.event("app_mention")(self.on_mention)
        self.app.event("message")(self.on_message)
        assistant = AsyncAssistant()
        assistant.thread_started(self.on_assistant_thread_started)
        assistant.user_message(self.on_assistant_message)
        self.app.assistant(assistant)
        self.app.event("member_joined_channel")(self.on_membership_change)
        self.app.event("member_left_channel")(self.on_membership_change)
        self.app.command("/ragbot")(self.on_command)
        self.app.action(jobs.FEEDBACK_UP)(self.on_feedback)
        self.app.action(jobs.FEEDBACK_DOWN)(self.on_feedback)

    async def on_mention(
        self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        if event.get("bot_id"):  # other bots mentioning us: never a loop of bots
            return
        await self._take_question(event, body, client, kind="mention")

    async def on_message(
        self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        if event.get("subtype") not in QUESTION_SUBTYPES or event.get("bot_id"):
            return
        if event.get("channel_type") == "im":
            await self._take_question(event, body, client, kind="dm")
            return
        thread_ts = event.get("thread_ts")
        if thread_ts and await self._answered_thread(self._team(event, body), event, thread_ts):
            await self._take_question(event, body, client, kind="follow_up")

    async def on_assistant_thread_started(self, set_suggested_prompts: Any) -> None:
        """Someone opened the side panel: offer a few questions."""
        prompts = [p.strip() for p in self.settings.ragbot_slack_suggested_prompts.split("|")]
        prompts = [p for p in prompts if p][:MAX_SUGGESTED_PROMPTS]
        if prompts:
            try:
                await set_suggested_prompts(prompts=prompts, title=SUGGESTED_TITLE)
            except Exception as exc:  # the panel still works without them
                log.warning("suggested prompts not set: %s", exc.__class__.__name__)

    async def on_assistant_message(
        self,
        payload: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        set_status: Any,
        set_title: Any,
    ) -> None:
        """A question in the side panel (or any DM thread): answered for the asker alone, with
        the panel's status instead of a placeholder and the thread titled by its question."""
        if payload.get("subtype") not in QUESTION_SUBTYPES or payload.get("bot_id"):
            return

        async def show_status() -> bool:
            try:
                await set_status(STATUS)
            except Exception:  # not an assistant thread: the placeholder instead
                return False
            try:
                if payload.get("thread_ts") and await self.store.claim(
                    f"slack:title:{payload['channel']}:{payload['thread_ts']}",
                    THREAD_MEMORY_SECONDS,
                ):
                    await set_title(question_text(payload.get("text", ""))[:TITLE_CHARS])
            except Exception as exc:  # the untitled thread still gets its answer
                log.info("thread title not set: %s", exc.__class__.__name__)
            return True

        await self._take_question(payload, body, client, kind="dm", status=show_status)

    async def on_membership_change(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """Someone joined or left: the channel's next answer reads its members afresh."""
        scope = slack_scope(self._team(event, body), str(event.get("channel") or ""))
        try:
            await self.store.put(generation_key(scope), new_generation(), GENERATION_SECONDS)
        except StoreUnavailable:  # the membership TTL still bounds how stale it gets
            log.warning("membership change in %s not recorded: the store is unavailable", scope)

    async def _answered_thread(self, team: str, event: dict[str, Any], thread_ts: str) -> bool:
        try:
            key = f"slack:thread:{team}:{event['channel']}:{thread_ts}"
            return bool(await self.store.get(key))
        except StoreUnavailable:  # unknowable now; a mention still reaches us
            metrics.ERRORS.labels("slack", "thread_memory").inc()
            return False

    async def _take_question(
        self,
        event: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        kind: str,
        status: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        started = time.perf_counter()
        team, channel, ts = self._team(event, body), event["channel"], event["ts"]
        thread_ts = event.get("thread_ts") or ts
        # Slack's retries repeat the event id; the app_mention/message pair for one message
        # shares the message key. Either seen before means the question is already taken.
        event_id = body.get("event_id")
        keys = [f"slack:msg:{team}:{channel}:{ts}"]
        if event_id:
            keys.insert(0, f"slack:event:{event_id}")

        async def say(text: str) -> None:
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)

        if not await self.intake.claim(keys, say):
            return
        text = question_text(event.get("text", ""))
        if not text:
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=HELP)
            return
        try:
            key = f"slack:thread:{team}:{channel}:{thread_ts}"
            await self.store.put(key, "1", THREAD_MEMORY_SECONDS)
        except StoreUnavailable:  # follow-ups will need a mention; the answer still comes
            metrics.ERRORS.labels("slack", "thread_memory").inc()
        if not await self.intake.fair_use(f"{team}:{event.get('user', '')}", channel, say):
            return
        placeholder = None
        if status is None or not await status():
            placeholder = await self._placeholder(client, channel, thread_ts)
        question = SlackQuestion(
            team_id=team,
            channel_id=channel,
            user_id=event.get("user", ""),
            text=text,
            message_ts=ts,
            thread_ts=thread_ts,
            is_direct=event.get("channel_type") == "im",
            placeholder_ts=placeholder,
            is_group_dm=event.get("channel_type") == "mpim",
        )

        async def queue_down(text: str) -> None:
            if placeholder:
                await client.chat_update(channel=channel, ts=placeholder, text=text)

        await self.intake.hand_over(
            question.question_id, question.to_payload(), kind, started, queue_down
        )

    async def _placeholder(
        self, client: AsyncWebClient, channel: str, thread_ts: str
    ) -> str | None:
        try:
            text = PLACEHOLDER + await self.intake.place_in_line()
            posted = await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)
            return str(posted.get("ts")) if posted.get("ts") else None
        except Exception as exc:  # the answer still comes, as a new message
            log.warning("placeholder failed in %s: %s", channel, exc.__class__.__name__)
            metrics.ERRORS.labels("slack", "placeholder").inc()
            return None

    @staticmethod
    def _team(event: dict[str, Any], body: dict[str, Any]) -> str:
        return str(body.get("team_id") or event.get("team") or "")

    async def on_command(
        self, ack: Any, respond: Any, command: dict[str, Any], client: AsyncWebClient
    ) -> None:
        try:
            words = shlex.split(command.get("text") or "")
        except ValueError:
            words = (command.get("text") or "").split()
        verb = words[0].lower() if words else "help"
        response_url = command.get("response_url")

        async def say(text: str) -> None:
            await respond(text=text, response_type="ephemeral", replace_original=False)

        if verb == "ask" and len(words) > 1:
            await ack("Searching the docs… (only you can see this answer)")
            question = SlackQuestion(
                team_id=command.get("team_id", ""),
                channel_id=command.get("channel_id", ""),
                user_id=command.get("user_id", ""),
                text=" ".join(words[1:]),
                message_ts=command.get("trigger_id", "") or str(time.time()),
                thread_ts="",
                is_direct=True,
                response_url=response_url,
            )
            if await self.intake.send(say, jobs.ANSWER, "slack", question.to_payload()):
                metrics.QUESTIONS.labels("slack", "command").inc()
            return
        if verb not in ADMIN_VERBS:
            await ack(HELP)
            return
        if not await self._is_admin(command.get("user_id", ""), client):
            await ack(admin.NOT_ADMIN)
            return
        conversation = slack_conversation(command.get("team_id", ""), command.get("channel_id", ""))
        if verb in ("scope", "doc"):
            try:
                if verb == "scope":
                    await ack(await admin.scope_command(self.store, conversation, words[1:]))
                else:
                    await ack(await admin.doc_command(self.store, words[1:]))
            except StoreUnavailable:
                await ack(admin.SETTING_NOT_SAVED)
            return
        if verb == "gaps":
            await self._on_gaps(ack, say, command, words[1:])
            return
        if verb == "updates":
            if words[1:] not in (["on"], ["off"]):
                await ack(admin.UPDATES_USAGE)
                return
            try:
                await ack(await admin.set_updates(self.store, conversation, words[1] == "on"))
            except StoreUnavailable:
                await ack(admin.SETTING_NOT_SAVED)
            return
        if verb == "status":
            await ack(admin.CHECKING)
            await self.intake.send(say, jobs.ADMIN_STATUS, response_url)
            return
        full = "--full" in words
        plan = admin.plan_reindex([w for w in words[1:] if w != "--full"], self.settings)
        if plan.refusal:
            await ack(plan.refusal)
            return
        await ack(admin.queued(plan.sources, full))
        for source in plan.sources:
            if not await self.intake.send(say, jobs.SYNC_SOURCE, source, full, response_url):
                return

    async def _on_gaps(self, ack: Any, say: Any, command: dict[str, Any], args: list[str]) -> None:
        """A report (ephemeral: it quotes questions asked in private) or the weekly digest."""
        plan = admin.plan_gaps(args)
        if plan.usage:
            await ack(plan.usage)
            return
        if plan.digest is not None:
            channel = str(command.get("channel_id", ""))
            target = SlackQuestion(
                team_id=command.get("team_id", ""),
                channel_id=channel,
                user_id=command.get("user_id", ""),
                text="",
                message_ts="",
                thread_ts="",
                is_direct=channel.startswith("D"),
            )
            try:
                reply = await admin.set_digest(
                    self.store, "slack", target.to_payload() if plan.digest else None
                )
            except StoreUnavailable:
                reply = admin.SETTING_NOT_SAVED
            await ack(reply)
            return
        await ack(admin.GATHERING_GAPS)
        await self.intake.send(say, jobs.ADMIN_GAPS, plan.days, command.get("response_url"))

    async def _is_admin(self, user_id: str, client: AsyncWebClient) -> bool:
        if admin.is_admin([user_id], self.settings):
            return True
        try:
            info = await client.users_info(user=user_id)
        except Exception:
            return False
        return admin.is_admin(
            [(info.get("user") or {}).get("profile", {}).get("email")], self.settings
        )

    async def on_feedback(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        vote = "up" if action.get("action_id") == jobs.FEEDBACK_UP else "down"
        user = (body.get("user") or {}).get("id")
        await self.intake.record_feedback(str(action.get("value", "")), vote, user)
