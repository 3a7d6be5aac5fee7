"""Teams front door: `POST /api/messages` through the Microsoft 365 Agents SDK.

Each message activity is checked (Bot Framework JWT when `MICROSOFT_APP_ID` is set), claimed
in Redis by its activity id (Teams re-posts an activity it thinks went unanswered), answered
at once with a "Searching…" reply in the thread, and handed to the workers with the
conversation reference they need to reply proactively. The bot's own messages, edits,
deletions and other activity types are ignored. Feedback from Teams' AI feedback loop arrives
as a `message/submitAction` invoke and is recorded.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from microsoft_agents.activity import Activity, InvokeResponse
from microsoft_agents.hosting.core import TurnContext
from microsoft_agents.hosting.core.authorization import ClaimsIdentity
from microsoft_agents.hosting.core.connector import ConnectorClientBase
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient
from pydantic import ValidationError

from bot import admin, metrics
from bot.dispatch import Dispatcher
from bot.intake import Intake
from bot.store import AsyncStore
from bot.teams.auth import AuthUnavailable, BotFrameworkAuth, Unauthorized
from workers import jobs
from workers.conversation_settings import teams_conversation
from workers.delivery.membership import (
    GENERATION_SECONDS,
    generation_key,
    new_generation,
    teams_scope,
)
from workers.delivery.teams_question import (
    Command,
    TeamsQuestion,
    parse_command,
    question_text,
    thread_conversation_id,
)
from workers.delivery.teams_service import (
    TeamsServiceError,
    make_adapter,
    make_credentials,
    with_retries,
)
from workers.kv import StoreUnavailable
from workers.settings import NotConfigured, Settings

log = logging.getLogger(__name__)

PLACEHOLDER = "Searching the docs… 🔎"
HELP = (
    "**Ask me about our docs:** mention me in a channel or chat with me here.\n\n"
    f"Admins: `status` · `reindex [{admin.SOURCE_CHOICES}] [--full]` · "
    "`updates on|off` (answer updates in this conversation) · "
    "`scope [list|add|remove] <place>` (what this conversation answers from) · "
    "`doc [list|boost|bury|hide|reset] <link>` · `gaps [days|weekly on|off]` (in a personal chat)"
)
FEEDBACK_INVOKE = "message/submitAction"
# Replies made while Teams waits for our HTTP response: Teams re-sends after 15 s.
IN_TURN_ATTEMPTS = 2
IN_TURN_MAX_WAIT_SECONDS = 2.0


class TeamsFrontDoor:
    def __init__(self, settings: Settings, store: AsyncStore, dispatcher: Dispatcher) -> None:
        self.settings = settings
        self.store = store
        self.intake = Intake("teams", store, dispatcher, settings)
        self.credentials = make_credentials(settings)
        self.adapter = make_adapter(settings, self.credentials)
        self.tenants = settings.teams_tenants
        self.auth: BotFrameworkAuth | None = None
        if settings.microsoft_app_id:
            if not self.tenants:
                raise NotConfigured(
                    "MICROSOFT_APP_ID is set but MICROSOFT_APP_TENANT_ID is not: without it any "
                    "Microsoft 365 organisation could ask about your documents. Set it to your "
                    "tenant id (or list the tenants to answer in RAGBOT_TEAMS_TENANTS)."
                )
            self.auth = BotFrameworkAuth(
                settings.microsoft_app_id, settings.microsoft_openid_metadata_url
            )
        else:
            log.warning(
                "Teams DEVELOPMENT MODE (RAGBOT_TEAMS_DEV=1, no MICROSOFT_APP_ID): /api/messages "
                "takes UNAUTHENTICATED requests from this machine only (the Bot Framework "
                "Emulator) and replies only to a local serviceUrl. Never run this in production."
            )

    async def warm(self, _: web.Application) -> None:
        """Signing keys and the bot's token fetched at start, not on the first question."""
        if self.auth is not None:
            await self.auth.warm()
        if self.credentials is not None:
            try:
                await self.credentials.token()
            except TeamsServiceError as exc:
                log.warning("%s; will retry on the first reply", exc)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One activity: 400 if malformed, 401 if not from the Bot Framework, else processed."""
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("not an object")
            Activity.model_validate(body)
        except (ValueError, ValidationError):
            return web.json_response({"error": "expected a Bot Framework activity"}, status=400)
        conversation = body.get("conversation")
        if not body.get("type") or not isinstance(conversation, dict) or not conversation.get("id"):
            return web.json_response(
                {"error": "activity needs type and conversation.id"}, status=400
            )
        if not str(body.get("serviceUrl") or "").startswith(("https://", "http://")):
            return web.json_response({"error": "activity needs a serviceUrl"}, status=400)
        if self.auth is not None:
            try:
                claims = await self.auth.verify(request.headers.get("Authorization"), body)
            except Unauthorized as exc:
                log.warning("Teams request refused: %s", exc)
                return web.json_response({"error": "unauthorized"}, status=401)
            except AuthUnavailable as exc:
                log.error("%s", exc)
                return web.json_response({"error": "cannot verify requests right now"}, status=503)
            request["claims_identity"] = ClaimsIdentity(claims, authentication_type="Bearer")
        elif not _local(request.remote) or not _local(urlsplit(body["serviceUrl"]).hostname):
            # Without an app id nothing proves who is calling; answering a remote caller, or
            # replying to a remote serviceUrl, would hand documents to anyone who asks.
            return web.json_response(
                {"error": "Teams is not configured here: set MICROSOFT_APP_ID"}, status=401
            )
        else:
            request["claims_identity"] = ClaimsIdentity()
        response = await self.adapter.process(request, self)
        return response if response is not None else web.Response(status=202)

    async def on_turn(self, context: TurnContext) -> None:
        activity = context.activity
        tenant = _tenant_of(activity)
        if self.auth is not None and tenant.lower() not in self.tenants:
            # Only this company's tenants are answered: another organisation's people would
            # otherwise be searched as this company's readers.
            log.warning("ignored a %s activity from another tenant", activity.type)
            metrics.IGNORED.labels("teams", "foreign_tenant").inc()
            return
        if activity.type == "invoke" and activity.name == FEEDBACK_INVOKE:
            await self._on_feedback(context)
            return
        if activity.type == "conversationUpdate":
            await self._on_members_changed(activity)
            return
        if activity.type != "message" or _from_a_bot(activity):
            return
        await self._take_message(context)

    async def _on_members_changed(self, activity: Activity) -> None:
        """Someone joined or left a team or chat: its next answer reads the roster afresh."""
        if not (activity.members_added or activity.members_removed):
            return
        channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
        team = str((channel_data.get("team") or {}).get("id") or "")
        conversation = activity.conversation.id if activity.conversation else ""
        scope = teams_scope(_tenant_of(activity), team or conversation)
        try:
            await self.store.put(generation_key(scope), new_generation(), GENERATION_SECONDS)
        except StoreUnavailable:  # the membership TTL still bounds how stale it gets
            log.warning("membership change in %s not recorded: the store is unavailable", scope)

    async def _take_message(self, context: TurnContext) -> None:
        started = time.perf_counter()
        activity = context.activity
        conversation = activity.conversation
        conversation_type = str(conversation.conversation_type or "personal")
        tenant = _tenant_of(activity)
        thread = thread_conversation_id(conversation.id, conversation_type, activity.id or "")
        question = TeamsQuestion(
            service_url=str(activity.service_url or ""),
            tenant_id=tenant,
            conversation_id=thread,
            conversation_type=conversation_type,
            activity_id=str(activity.id or ""),
            user_id=str(activity.from_property.id),
            user_aad_id=str(activity.from_property.aad_object_id or ""),
            bot_id=str(activity.recipient.id if activity.recipient else ""),
            bot_name=str(activity.recipient.name or "" if activity.recipient else ""),
            text=question_text(activity.text, _bot_mentions(activity)),
            team_id=_team_of(activity),
        )
        connector = context.services.get(ConnectorClientBase)  # type: ignore[type-abstract]

        async def say(text: str) -> None:
            await self._reply(connector, question, text)

        if not await self.intake.claim([f"teams:activity:{tenant}:{question.activity_id}"], say):
            return
        command = parse_command(question.text)
        if command is not None:
            await self._on_command(connector, question, command)
            return
        person = f"{tenant}:{question.user_aad_id or question.user_id}"
        if not await self.intake.fair_use(person, question.roster_id, say):
            return
        placeholder = await self._reply(
            connector, question, PLACEHOLDER + await self.intake.place_in_line()
        )
        question = TeamsQuestion.from_payload(
            question.to_payload() | {"placeholder_id": placeholder}
        )

        async def queue_down(text: str) -> None:
            await self._reply(connector, question, text, replace=placeholder)

        await self.intake.hand_over(
            question.question_id,
            question.to_payload(),
            question.conversation_type,
            started,
            queue_down,
        )

    async def _on_command(
        self, connector: ConnectorClientBase | None, question: TeamsQuestion, command: Command
    ) -> None:
        async def say(text: str) -> None:
            await self._reply(connector, question, text)

        if command.verb == "help":
            await say(HELP)
            return
        if not await self._is_admin(connector, question):
            await say(admin.NOT_ADMIN)
            return
        reply_to = {"teams": question.to_payload()}
        conversation = teams_conversation(question.tenant_id, question.conversation_id)
        if command.verb in ("scope", "doc", "gaps"):
            reply = await self._curation_reply(question, command, conversation, say)
            if reply:
                await say(reply)
            return
        if command.verb == "updates":
            try:
                reply = await admin.set_updates(
                    self.store, conversation, command.sources == ("on",)
                )
            except StoreUnavailable:
                reply = admin.SETTING_NOT_SAVED
            await say(reply)
            return
        if command.verb == "status":
            await say(admin.CHECKING)
            await self.intake.send(say, jobs.ADMIN_STATUS, reply_to)
            return
        plan = admin.plan_reindex(command.sources, self.settings)
        if plan.refusal:
            await say(plan.refusal)
            return
        await say(admin.queued(plan.sources, command.full))
        for source in plan.sources:
            if not await self.intake.send(say, jobs.SYNC_SOURCE, source, command.full, reply_to):
                return

    async def _curation_reply(
        self,
        question: TeamsQuestion,
        command: Command,
        conversation: str,
        say: Callable[[str], Awaitable[None]],
    ) -> str | None:
        """`scope` and `doc` are answered here; `gaps` reports come from a worker."""
        try:
            if command.verb == "scope":
                return await admin.scope_command(self.store, conversation, command.args)
            if command.verb == "doc":
                return await admin.doc_command(self.store, command.args)
            plan = admin.plan_gaps(command.args)
            if plan.usage:
                return plan.usage
            if plan.digest is not None:
                target = question.to_payload() if plan.digest else None
                return await admin.set_digest(self.store, "teams", target)
        except StoreUnavailable:
            return admin.SETTING_NOT_SAVED
        if question.conversation_type != "personal":  # it quotes questions asked in private
            return admin.GAPS_ONLY_IN_PRIVATE
        await say(admin.GATHERING_GAPS)
        await self.intake.send(say, jobs.ADMIN_GAPS, plan.days, {"teams": question.to_payload()})
        return None

    async def _is_admin(
        self, connector: ConnectorClientBase | None, question: TeamsQuestion
    ) -> bool:
        """`RAGBOT_ADMINS` names AAD object ids or emails; emails come from the roster."""
        if admin.is_admin([question.user_aad_id], self.settings):
            return True
        if not isinstance(connector, TeamsConnectorClient):
            return False
        try:
            member = await with_retries(
                lambda: connector.get_conversation_member(question.roster_id, question.user_id),
                "roster",
                IN_TURN_ATTEMPTS,
                IN_TURN_MAX_WAIT_SECONDS,
            )
        except TeamsServiceError:
            return False
        return admin.is_admin([member.email, member.user_principal_name], self.settings)

    async def _reply(
        self,
        connector: ConnectorClientBase | None,
        question: TeamsQuestion,
        text: str,
        replace: str | None = None,
    ) -> str | None:
        """Posts (or edits) a short message in the question's thread; returns its id."""
        if connector is None:
            return None
        activity = Activity.model_validate(
            {
                "type": "message",
                "text": text,
                "textFormat": "markdown",
                "from": {"id": question.bot_id, "name": question.bot_name},
                "recipient": {"id": question.user_id},
                "conversation": {"id": question.conversation_id},
                "replyToId": question.activity_id,
            }
        )
        conversations = connector.conversations
        try:
            if replace:
                activity.id = replace
                await with_retries(
                    lambda: conversations.update_activity(
                        question.conversation_id, replace, activity
                    ),
                    "update",
                    IN_TURN_ATTEMPTS,
                    IN_TURN_MAX_WAIT_SECONDS,
                )
                return replace
            posted = await with_retries(
                lambda: conversations.reply_to_activity(
                    question.conversation_id, question.activity_id, activity
                ),
                "reply",
                IN_TURN_ATTEMPTS,
                IN_TURN_MAX_WAIT_SECONDS,
            )
        except TeamsServiceError as exc:  # the answer still comes, as a new message
            log.warning("Teams reply failed in %s: %s", question.question_id, exc)
            metrics.ERRORS.labels("teams", "reply").inc()
            return None
        return str(posted.id) if posted and posted.id else None

    async def _on_feedback(self, context: TurnContext) -> None:
        activity = context.activity
        value = activity.value if isinstance(activity.value, dict) else {}
        raw_action = value.get("actionValue")
        action: dict[str, Any] = raw_action if isinstance(raw_action, dict) else {}
        reaction = str(action.get("reaction") or "")
        if value.get("actionName") == "feedback" and reaction in ("like", "dislike"):
            question_id = await self.store.get(f"teams:answer_message:{activity.reply_to_id}") or ""
            await self.intake.record_feedback(
                question_id,
                "up" if reaction == "like" else "down",
                activity.from_property.aad_object_id or activity.from_property.id,
                _feedback_text(action.get("feedback")),
            )
        await context.send_activity(
            Activity(type="invokeResponse", value=InvokeResponse(status=200, body={}))
        )


def _tenant_of(activity: Activity) -> str:
    """The tenant an activity comes from (the conversation's, else Teams' channel data)."""
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    conversation = activity.conversation
    return str(
        (conversation.tenant_id if conversation else None)
        or (channel_data.get("tenant") or {}).get("id")
        or "unknown"
    )


def _team_of(activity: Activity) -> str:
    """The team a channel message belongs to; empty in chats."""
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    team = channel_data.get("team")
    return str(team.get("id") or "") if isinstance(team, dict) else ""


def _local(host: str | None) -> bool:
    """Loopback only: the emulator and ragbot on the same machine."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address((host or "").strip("[]")).is_loopback
    except ValueError:
        return False


def _from_a_bot(activity: Activity) -> bool:
    sender = activity.from_property
    if sender is None:
        return True
    recipient_id = activity.recipient.id if activity.recipient else None
    return sender.id == recipient_id or (sender.role or "").lower() == "bot"


def _bot_mentions(activity: Activity) -> list[str]:
    """The `<at>…</at>` texts that mention the bot itself (other mentions stay as names)."""
    bot_id = activity.recipient.id if activity.recipient else None
    texts: list[str] = []
    for entity in activity.entities or []:
        data: dict[str, Any] = entity.model_dump(by_alias=True, exclude_none=True)
        mentioned = data.get("mentioned") or {}
        if data.get("type") == "mention" and mentioned.get("id") == bot_id and data.get("text"):
            texts.append(str(data["text"]))
    return texts


def _feedback_text(raw: object) -> str | None:
    """Teams sends the comment as a JSON string `{"feedbackText": "…"}`."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw[:2000]
    text = parsed.get("feedbackText") if isinstance(parsed, dict) else None
    return str(text)[:2000] if text else None
