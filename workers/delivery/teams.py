"""The workers' side of Teams: who is asking, who can read the reply, and posting it.

Replies are proactive: the worker continues the conversation from the reference the front door
stored, replaces the "Searching…" placeholder with the answer and posts any overflow in the
same thread, recording what it posted, so a task that runs twice edits the same messages. The
Bot Framework has no API to read a Teams thread, so the thread's earlier questions and answers
are kept in Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

from microsoft_agents.activity import Activity, ConversationReference
from microsoft_agents.hosting.core import TurnContext
from microsoft_agents.hosting.core.authorization import ClaimsIdentity
from microsoft_agents.hosting.core.connector import ConnectorClientBase
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient

from workers.delivery.chat import PostedMessages, Reader
from workers.delivery.render import TeamsMessage, teams_answer, teams_notice
from workers.delivery.teams_question import TeamsQuestion
from workers.delivery.teams_service import TeamsServiceError, make_adapter, with_retries
from workers.kv import KeyValue
from workers.rag.answer import Answer
from workers.rag.prompt import Turn
from workers.readers import one_reader, org_wide, public_only
from workers.settings import Settings

log = logging.getLogger(__name__)

ROSTER_CACHE_SECONDS = 3600
ANSWER_MESSAGE_SECONDS = 30 * 86400
HISTORY_TURNS = 10
# A channel thread is one topic for days; a personal chat is a stream of unrelated questions.
THREAD_HISTORY_SECONDS = 7 * 86400
CHAT_HISTORY_SECONDS = 3600
ROSTER_PAGE = 500
GUEST_ROLES = frozenset({"guest", "anonymous"})
BOT_FRAMEWORK_AUDIENCE = "https://api.botframework.com"
T = TypeVar("T")


class TeamsDelivery:
    def __init__(self, settings: Settings, kv: KeyValue) -> None:
        self.adapter = make_adapter(settings)
        self.app_id = settings.microsoft_app_id or ""
        self.tenants = settings.teams_tenants  # empty only in development mode
        self.kv = kv

    def call(
        self, question: TeamsQuestion, operation: Callable[[TeamsConnectorClient], Awaitable[T]]
    ) -> T:
        """Runs `operation` with a connector client for the question's conversation."""

        async def proactive() -> T:
            results: list[T] = []
            failures: list[BaseException] = []

            async def turn(context: TurnContext) -> None:
                connector = context.services.get(ConnectorClientBase)  # type: ignore[type-abstract]
                if not isinstance(connector, TeamsConnectorClient):
                    failures.append(TeamsServiceError("no Teams connector for this conversation"))
                    return
                try:
                    results.append(await operation(connector))
                except Exception as exc:  # raised after the SDK has closed its sessions
                    failures.append(exc)

            reference = ConversationReference.model_validate(question.reference())
            continuation = reference.get_continuation_activity()
            if self.app_id:
                await self.adapter.continue_conversation(self.app_id, continuation, turn)
            else:  # the emulator: an anonymous identity, so the SDK asks for no token
                await self.adapter.continue_conversation_with_claims(
                    ClaimsIdentity(), continuation, turn, audience=BOT_FRAMEWORK_AUDIENCE
                )
            if failures:
                raise failures[0]
            return results[0]

        return asyncio.run(proactive())

    def member(self, question: TeamsQuestion) -> dict[str, str]:
        """The asker's roster entry (email, UPN), cached for an hour."""
        key = f"teams:member:{question.tenant_id}:{question.user_id}"
        cached = self.kv.get(key)
        if cached:
            return dict(json.loads(cached))

        async def lookup(connector: TeamsConnectorClient) -> dict[str, str]:
            account = await with_retries(
                lambda: connector.get_conversation_member(question.roster_id, question.user_id),
                "roster",
            )
            return {
                "email": account.email or "",
                "upn": account.user_principal_name or "",
                "aad": account.aad_object_id or "",
            }

        found = self.call(question, lookup)
        self.kv.put(key, json.dumps(found), ROSTER_CACHE_SECONDS)
        return found

    def has_outsiders(self, question: TeamsQuestion) -> bool:
        """Guests or people from another tenant can read this conversation (cached an hour)."""
        key = f"teams:outsiders:{question.tenant_id}:{question.roster_id}"
        cached = self.kv.get(key)
        if cached is not None:
            return cached == "1"

        async def scan(connector: TeamsConnectorClient) -> bool:
            token = ""
            while True:
                page = await with_retries(
                    partial(
                        connector.get_conversation_paged_member,
                        question.roster_id,
                        ROSTER_PAGE,
                        token,
                    ),
                    "roster",
                )
                for member in page.members or []:
                    role = (member.user_role or "").lower()
                    tenant = member.tenant_id or question.tenant_id
                    if role in GUEST_ROLES or tenant.lower() != question.tenant_id.lower():
                        return True
                token = page.continuation_token or ""
                if not token:
                    return False

        outsiders = self.call(question, scan)
        self.kv.put(key, "1" if outsiders else "0", ROSTER_CACHE_SECONDS)
        return outsiders

    def post(
        self, question: TeamsQuestion, messages: Sequence[TeamsMessage], remember: bool = False
    ) -> list[str]:
        """Replace the placeholder with the first message; post the others in the thread.

        With `remember`, each message posted is recorded under the question, so a task that
        runs again edits those messages instead of posting them twice.
        """
        posted = PostedMessages(self.kv if remember else None, question.question_id)

        async def send(connector: TeamsConnectorClient) -> list[str]:
            conversations = connector.conversations
            ids: list[str] = []
            for index, message in enumerate(messages):
                activity = self._activity(question, message)
                target = posted.target(index, question.placeholder_id)
                if target:
                    activity.id = target
                    try:
                        await with_retries(
                            partial(
                                conversations.update_activity,
                                question.conversation_id,
                                target,
                                activity,
                            ),
                            "update",
                        )
                        ids.append(target)
                        continue
                    except TeamsServiceError as exc:
                        if exc.status != 404:
                            raise
                        log.info("message %s gone; posting anew", target)
                        activity.id = None
                sent = await with_retries(
                    partial(
                        conversations.reply_to_activity,
                        question.conversation_id,
                        question.activity_id,
                        activity,
                    ),
                    "reply",
                )
                ids.append(str(sent.id or ""))
                posted.record(index, ids[-1])
            return ids

        return self.call(question, send)

    def notify(self, question: TeamsQuestion, text: str) -> None:
        """A new message in the thread (command results), leaving earlier replies alone."""
        unplaced = TeamsQuestion.from_payload(question.to_payload() | {"placeholder_id": None})
        self.post(unplaced, [teams_notice(text)])

    @staticmethod
    def _activity(question: TeamsQuestion, message: TeamsMessage) -> Activity:
        return Activity.model_validate(
            message.activity()
            | {
                "from": {"id": question.bot_id, "name": question.bot_name},
                "recipient": {"id": question.user_id},
                "conversation": {"id": question.conversation_id},
                "replyToId": question.activity_id,
            }
        )


class TeamsThread:
    """One Teams question as a `ChatThread`."""

    def __init__(self, question: TeamsQuestion, delivery: TeamsDelivery) -> None:
        self.question = question
        self.delivery = delivery

    @property
    def question_id(self) -> str:
        return self.question.question_id

    @property
    def text(self) -> str:
        return self.question.text

    def reader_principals(self, org_domains: list[str], reader: Reader) -> frozenset[str]:
        """A personal chat is searched as its one reader; any other conversation as everyone
        who can read it: the org-wide reader, or `public` alone when outsiders are present."""
        tenants = self.delivery.tenants
        if tenants and self.question.tenant_id.lower() not in tenants:
            return public_only()  # another organisation's people: never read as ours
        if self.question.is_personal:
            member = self.delivery.member(self.question)
            email = (member.get("email") or member.get("upn") or "").lower()
            upn = (member.get("upn") or "").lower()
            principals = one_reader(email, reader)
            if principals == public_only():
                return principals
            # A UPN that differs from the mail address still names the same person.
            return principals | {f"user:{upn}"} if "@" in upn and upn != email else principals
        if self.delivery.has_outsiders(self.question):
            return public_only()
        return org_wide(org_domains)

    @property
    def _history_key(self) -> str:
        return f"teams:history:{self.question.tenant_id}:{self.question.conversation_id}"

    def history(self) -> list[Turn]:
        stored = self.delivery.kv.get(self._history_key)
        turns = json.loads(stored) if stored else []
        return [Turn(t["role"], t["text"]) for t in turns]

    def post_answer(self, answer: Answer) -> None:
        ids = self.delivery.post(self.question, teams_answer(answer), remember=True)
        kv = self.delivery.kv
        for message_id in ids:
            if message_id:
                kv.put(
                    f"teams:answer_message:{message_id}", self.question_id, ANSWER_MESSAGE_SECONDS
                )
        self._remember(answer.text)

    def post_notice(self, text: str, new_message: bool = False) -> None:
        if new_message:
            self.delivery.notify(self.question, text)
        else:
            self.delivery.post(self.question, [teams_notice(text)])

    def _remember(self, answer_text: str) -> None:
        turns = [{"role": t.role, "text": t.text} for t in self.history()]
        turns += [{"role": "user", "text": self.text}, {"role": "assistant", "text": answer_text}]
        ttl = CHAT_HISTORY_SECONDS if self.question.is_personal else THREAD_HISTORY_SECONDS
        self.delivery.kv.put(self._history_key, json.dumps(turns[-HISTORY_TURNS:]), ttl)
