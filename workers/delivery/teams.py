"""The workers' side of Teams: who is asking, who can read the reply, and posting it.

Replies are proactive: the worker continues the conversation from the reference the front door
stored, replaces the "Searching…" placeholder with the answer and posts any overflow in the
same thread, recording what it posted, so a task that runs twice edits the same messages. The
Bot Framework has no API to read a Teams thread, so the thread's earlier questions and answers
are kept in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from microsoft_agents.activity import (
    Activity,
    ConversationParameters,
    ConversationReference,
    Entity,
)
from microsoft_agents.hosting.core import TurnContext
from microsoft_agents.hosting.core.authorization import ClaimsIdentity
from microsoft_agents.hosting.core.connector import ConnectorClientBase
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient

from workers.conversation_settings import teams_conversation
from workers.delivery.chat import AnswerStream, MembersUnreadable, PostedMessages, ViewRules
from workers.delivery.membership import MembershipCache, teams_scope
from workers.delivery.render import (
    PRIVATE_HEADER,
    TeamsMessage,
    answer_context,
    headed,
    teams_answer,
    teams_notice,
)
from workers.delivery.teams_question import TeamsQuestion
from workers.delivery.teams_service import TeamsServiceError, make_adapter, with_retries
from workers.kv import KeyValue, StoreUnavailable
from workers.rag.answer import Answer
from workers.rag.prompt import Turn
from workers.readers import (
    EXTERNAL,
    GUEST,
    NOT_A_READER,
    PERSON,
    UNRESOLVED,
    Member,
    ReaderError,
    View,
    members_view,
    person,
    private_view,
    public_only,
)
from workers.settings import Settings

log = logging.getLogger(__name__)

ROSTER_CACHE_SECONDS = 3600  # the asker's own roster entry, in a personal chat
CHANNEL_NAMES_SECONDS = 86400  # a team's channel names (renames are rare)
# Teams lists a team's first channel without a name: its clients call it General.
FIRST_CHANNEL = "General"
ANSWER_MESSAGE_SECONDS = 30 * 86400
HISTORY_TURNS = 10
# A channel thread is one topic for days; a personal chat is a stream of unrelated questions.
THREAD_HISTORY_SECONDS = 7 * 86400
CHAT_HISTORY_SECONDS = 3600
ROSTER_PAGE = 500
GUEST_ROLES = frozenset({"guest", "anonymous"})
REFUSALS = frozenset({400, 401, 403, 404})  # asking again will not change the answer
BOT_FRAMEWORK_AUDIENCE = "https://api.botframework.com"
T = TypeVar("T")


def teams_member(account: Any, tenant_id: str) -> Member:
    """A roster entry as a reader: guests and other tenants' people fail the conversation
    closed; bots read nothing; a person without a mail address or UPN is unresolved."""
    user_id = str(account.id or "")
    if user_id.startswith("28:"):
        return Member(user_id, NOT_A_READER)
    role = (account.user_role or "").lower()
    if role in GUEST_ROLES:
        return Member(user_id, GUEST)
    if (account.tenant_id or tenant_id).lower() != tenant_id.lower():
        return Member(user_id, EXTERNAL)
    emails = tuple(e for e in (account.email, account.user_principal_name) if e and "@" in e)
    return Member(user_id, PERSON, emails) if emails else Member(user_id, UNRESOLVED)


class TeamsDelivery:
    def __init__(self, settings: Settings, kv: KeyValue) -> None:
        self.adapter = make_adapter(settings)
        self.app_id = settings.microsoft_app_id or ""
        self.tenants = settings.teams_tenants  # empty only in development mode
        self.kv = kv
        self.memberships = MembershipCache(kv, settings.ragbot_membership_ttl_seconds)

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

    def channel_name(self, question: TeamsQuestion) -> str | None:
        """The channel's name as its team lists it (cached a day); None outside a channel or
        when Teams will not list the team's channels."""
        if question.conversation_type != "channel" or not question.team_id:
            return None
        key = f"teams:channels:{question.tenant_id}:{question.team_id}"
        try:
            cached = self.kv.get(key)
        except StoreUnavailable:
            cached = None
        if cached:
            return dict(json.loads(cached)).get(question.roster_id)

        async def listing(connector: TeamsConnectorClient) -> dict[str, str]:
            channels = await with_retries(
                lambda: connector.fetch_channel_list(question.team_id), "channel list"
            )
            return {c.id: c.name or FIRST_CHANNEL for c in channels if c.id}

        try:
            names = self.call(question, listing)
        except TeamsServiceError as exc:
            log.info("channel names of team %s unknown: %s", question.team_id, exc)
            return None
        with contextlib.suppress(StoreUnavailable):  # if not kept, asked again next time
            self.kv.put(key, json.dumps(names), CHANNEL_NAMES_SECONDS)
        return names.get(question.roster_id)

    def members(self, question: TeamsQuestion) -> list[Member]:
        """Everyone who can read the conversation (a team's channels share the team's roster
        generation, so one `conversationUpdate` refreshes them all)."""

        async def roster(connector: TeamsConnectorClient) -> list[Member]:
            found: list[Member] = []
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
                found += [teams_member(m, question.tenant_id) for m in page.members or []]
                token = page.continuation_token or ""
                if not token:
                    return found

        try:
            return self.memberships.members(
                teams_scope(question.tenant_id, question.team_id or question.roster_id),
                lambda: self.call(question, roster),
            )
        except TeamsServiceError as exc:
            if exc.status in REFUSALS:
                raise MembersUnreadable(f"Teams will not list the members: {exc}") from exc
            raise

    def post(
        self,
        question: TeamsQuestion,
        messages: Sequence[TeamsMessage],
        remember: bool = False,
        key: str | None = None,
    ) -> list[str]:
        """Replace the placeholder with the first message; post the others in the thread.

        With `remember`, each message posted is recorded under the question (or `key`), so a
        task that runs again edits those messages instead of posting them twice.
        """
        posted = PostedMessages(self.kv if remember else None, key or question.question_id)

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

    def send_privately(self, question: TeamsQuestion, messages: Sequence[TeamsMessage]) -> None:
        """Messages in the asker's personal chat with the bot (created if need be). Each is
        recorded once posted, so a task that runs again edits it instead of posting twice."""
        posted = PostedMessages(self.kv, f"{question.question_id}:private")

        async def send(connector: TeamsConnectorClient) -> None:
            conversations = connector.conversations
            parameters = ConversationParameters.model_validate(
                {
                    "isGroup": False,
                    "bot": {"id": question.bot_id, "name": question.bot_name},
                    "members": [{"id": question.user_id}],
                    "tenantId": question.tenant_id,
                    "channelData": {"tenant": {"id": question.tenant_id}},
                }
            )
            chat = await with_retries(
                partial(conversations.create_conversation, parameters), "create chat"
            )
            for index, message in enumerate(messages):
                activity = Activity.model_validate(
                    message.activity()
                    | {
                        "from": {"id": question.bot_id, "name": question.bot_name},
                        "recipient": {"id": question.user_id},
                        "conversation": {"id": chat.id},
                    }
                )
                target = posted.target(index, None)
                if target:
                    activity.id = target
                    await with_retries(
                        partial(conversations.update_activity, chat.id, target, activity),
                        "update",
                    )
                    continue
                sent = await with_retries(
                    partial(conversations.send_to_conversation, chat.id, activity), "send"
                )
                posted.record(index, str(sent.id or ""))

        self.call(question, send)

    def stream_update(
        self,
        question: TeamsQuestion,
        stream_id: str | None,
        sequence: int,
        text: str,
        informative: bool = False,
    ) -> str:
        """A streaming update in a personal chat (all the text so far); returns the stream's id
        (Teams names the stream after its first update)."""
        info: dict[str, object] = {
            "type": "streaminfo",
            "streamType": "informative" if informative else "streaming",
            "streamSequence": sequence,
        }
        if stream_id:
            info["streamId"] = stream_id
        activity = self._activity(question, TeamsMessage(text, []))
        activity.type = "typing"
        activity.entities = [Entity.model_validate(info)]
        sent = self._on_conversation(
            question,
            "stream",
            lambda c: c.reply_to_activity(question.conversation_id, question.activity_id, activity),
        )
        return str(sent.id or stream_id or "")

    def stream_final(self, question: TeamsQuestion, stream_id: str, message: TeamsMessage) -> None:
        """The stream's final message: the checked answer, with its citations and feedback."""
        activity = self._activity(question, message)
        final = Entity.model_validate(
            {"type": "streaminfo", "streamId": stream_id, "streamType": "final"}
        )
        activity.entities = [*(activity.entities or []), final]
        self._on_conversation(
            question,
            "stream final",
            lambda c: c.reply_to_activity(question.conversation_id, question.activity_id, activity),
        )

    def edit(self, question: TeamsQuestion, activity_id: str, message: TeamsMessage) -> None:
        activity = self._activity(question, message)
        activity.id = activity_id
        self._on_conversation(
            question,
            "update",
            lambda c: c.update_activity(question.conversation_id, activity_id, activity),
        )

    def delete(self, question: TeamsQuestion, activity_id: str) -> None:
        self._on_conversation(
            question, "delete", lambda c: c.delete_activity(question.conversation_id, activity_id)
        )

    def _on_conversation(
        self, question: TeamsQuestion, what: str, operation: Callable[[Any], Awaitable[T]]
    ) -> T:
        """One call on the connector's conversations, retried as every Teams call is."""

        async def run(connector: TeamsConnectorClient) -> T:
            return await with_retries(lambda: operation(connector.conversations), what)

        return self.call(question, run)

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

    def view(self, rules: ViewRules) -> View:
        """A personal chat is searched as its one reader; a channel or group chat as all its
        members; another organisation's conversation as `public` alone."""
        tenants = self.delivery.tenants
        if tenants and self.question.tenant_id.lower() not in tenants:
            return private_view(public_only())  # another organisation's people: never ours
        if self.question.is_personal:
            member = self.delivery.member(self.question)
            emails = [member.get("email") or "", member.get("upn") or ""]
            try:
                return private_view(person(emails, rules.reader))
            except ReaderError:
                return private_view(public_only())
        members = self.delivery.members(self.question)
        return members_view(
            members, self.question.user_id, rules.reader, rules.org_domains, rules.max_members
        )

    @property
    def _history_key(self) -> str:
        return f"teams:history:{self.question.tenant_id}:{self.question.conversation_id}"

    def stream(self) -> AnswerStream | None:
        """Personal chats stream; channels and group chats preview in the placeholder."""
        from workers.delivery.teams_stream import TeamsAnswerStream

        return TeamsAnswerStream(self.delivery, self.question, self._render, self._posted)

    def _render(self, answer: Answer, view: View, note: str | None = None) -> list[TeamsMessage]:
        # One italic line in Teams: the parts joined by a space.
        return teams_answer(answer, context=answer_context(view, self._place, note, " "))

    def history(self) -> list[Turn]:
        stored = self.delivery.kv.get(self._history_key)
        turns = json.loads(stored) if stored else []
        return [Turn(t["role"], t["text"]) for t in turns]

    @property
    def conversation(self) -> str:
        return teams_conversation(self.question.tenant_id, self.question.conversation_id)

    @property
    def revisable(self) -> bool:
        return True

    @property
    def where(self) -> str:
        kind = self.question.conversation_type
        if kind == "channel":
            name = self.delivery.channel_name(self.question)
            return f'Teams channel "{name}"' if name else f"Teams channel {self.question.roster_id}"
        return "a Teams group chat" if kind == "groupChat" else "a Teams personal chat"

    @property
    def _place(self) -> str:
        return "this channel" if self.question.conversation_type == "channel" else "this chat"

    def post_answer(self, answer: Answer, view: View, note: str | None = None) -> None:
        ids = self.delivery.post(self.question, self._render(answer, view, note), remember=True)
        self._posted(ids, answer, remember=note is None)  # a note: a revision, already known

    def _posted(self, ids: list[str], answer: Answer, remember: bool = True) -> None:
        """Feedback on these messages is the question's; the answer joins the thread's history."""
        for message_id in ids:
            if message_id:
                self.delivery.kv.put(
                    f"teams:answer_message:{message_id}", self.question_id, ANSWER_MESSAGE_SECONDS
                )
        if remember:
            self._remember(answer.text)

    def post_follow_up(
        self, answer: Answer, view: View, heading: str, key: str, note: str | None = None
    ) -> None:
        unplaced = TeamsQuestion.from_payload(self.question.to_payload() | {"placeholder_id": None})
        self.delivery.post(unplaced, self._render(headed(answer, heading), view, note), True, key)

    def post_private(self, answer: Answer) -> None:
        place = "that channel" if self.question.conversation_type == "channel" else "that chat"
        header = PRIVATE_HEADER.format(place=place)
        self.delivery.send_privately(
            self.question, teams_answer(answer, context=header, feedback=False)
        )

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
