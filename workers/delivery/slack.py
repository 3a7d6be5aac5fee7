"""The workers' side of Slack: who is asking, where, what was said before, and posting replies.

Uses the synchronous `slack_sdk.WebClient` with retry handlers for 429 (honouring
Retry-After), 5xx and connection errors. Replies are idempotent: the answer replaces the
question's placeholder with `chat.update`, and the ids of any further messages are kept in
Redis, so a task that runs twice edits the same messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from workers.conversation_settings import slack_conversation
from workers.delivery.chat import (
    AnswerStream,
    DeliveryError,
    MembersUnreadable,
    PostedMessages,
    ViewRules,
)
from workers.delivery.membership import MembershipCache, slack_scope
from workers.delivery.render import (
    PRIVATE_HEADER,
    SlackMessage,
    answer_context,
    headed,
    slack_answer,
    slack_notice,
)
from workers.delivery.slack_question import SlackQuestion
from workers.kv import KeyValue, MemoryKeyValue, StoreUnavailable
from workers.rag.answer import Answer
from workers.rag.prompt import Turn
from workers.readers import (
    EXTERNAL,
    GUEST,
    NOT_A_READER,
    PERSON,
    UNRESOLVED,
    Member,
    View,
    members_view,
    one_reader,
    private_view,
)

log = logging.getLogger(__name__)

HISTORY_MESSAGES = 10
USER_CACHE_SECONDS = 3600
MEMBERS_PAGE = 200
# users.info lookups in flight for one channel: a cold 100-member channel takes a few round
# trips, not a hundred; Slack's 429s (Retry-After) are honoured by each call's retry handler.
MEMBER_LOOKUPS = 8
SLACKBOT = "USLACKBOT"


class SlackDeliveryError(DeliveryError):
    """Slack refused or could not be reached after retries; `error` is Slack's error code."""

    def __init__(self, message: str, error: str = "") -> None:
        super().__init__(message)
        self.error = error

    @property
    def refused(self) -> bool:
        """Slack answered with a reason that asking again will not change."""
        return bool(self.error) and self.error not in TRANSIENT_ERRORS


# Slack's codes for a failure that may pass (the client has already retried 429s and 5xx).
TRANSIENT_ERRORS = frozenset(
    {
        "None",
        "ratelimited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)


# The placeholder is gone (someone deleted it) or can no longer be edited: post anew instead.
PLACEHOLDER_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


def make_web_client(token: str, base_url: str) -> WebClient:
    client = WebClient(token=token, base_url=base_url, timeout=15)
    client.retry_handlers.extend(
        [
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ]
    )
    return client


def slack_member(user_id: str, user: dict[str, Any], team_id: str, bot_user_id: str) -> Member:
    """A `users.info` record as a reader: bots, the app and deactivated accounts read nothing;
    guests and other organisations' people (Slack Connect) fail the channel closed."""
    if user_id in (bot_user_id, SLACKBOT) or user.get("is_bot") or user.get("deleted"):
        return Member(user_id, NOT_A_READER)
    if user.get("is_restricted") or user.get("is_ultra_restricted"):
        return Member(user_id, GUEST)
    home = str(user.get("team_id") or team_id)
    # Enterprise Grid members of other workspaces carry `enterprise_user`; they are ours.
    if user.get("is_stranger") or (home != team_id and not user.get("enterprise_user")):
        return Member(user_id, EXTERNAL)
    profile = user.get("profile")
    email = profile.get("email") if isinstance(profile, dict) else None
    if not email:  # hidden without the users:read.email scope: we cannot say who this is
        return Member(user_id, UNRESOLVED)
    return Member(user_id, PERSON, (str(email),))


class SlackDelivery:
    def __init__(
        self,
        client: WebClient,
        kv: KeyValue | None = None,
        membership_ttl_seconds: int = 900,
        member_lookups: int = MEMBER_LOOKUPS,
    ) -> None:
        self._client = client
        self._member_lookups = member_lookups
        self.kv = kv or MemoryKeyValue()
        self._memberships = MembershipCache(self.kv, membership_ttl_seconds)
        self._bot_user_id: str | None = None
        self._users: dict[str, tuple[float, dict[str, Any]]] = {}

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a Web API method by its name, e.g. "chat.update" -> WebClient.chat_update."""
        try:
            response = getattr(self._client, method.replace(".", "_"))(**params)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            raise SlackDeliveryError(f"Slack {method} failed: {error or exc}", str(error)) from exc
        except OSError as exc:
            raise SlackDeliveryError(f"Slack {method} unreachable: {exc}") from exc
        return dict(response.data) if isinstance(response.data, dict) else {}

    @property
    def bot_user_id(self) -> str:
        if self._bot_user_id is None:
            self._bot_user_id = str(self.call("auth.test").get("user_id", ""))
        return self._bot_user_id

    def user(self, user_id: str) -> dict[str, Any]:
        """A person's `users.info` record, cached for an hour."""
        cached = self._users.get(user_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        found = self.call("users.info", user=user_id).get("user")
        user = found if isinstance(found, dict) else {}
        self._users[user_id] = (time.monotonic() + USER_CACHE_SECONDS, user)
        return user

    def email_of(self, user_id: str) -> str | None:
        """The asker's email from their profile."""
        profile = self.user(user_id).get("profile")
        email = profile.get("email") if isinstance(profile, dict) else None
        return str(email) if email else None

    def members(self, team_id: str, channel_id: str) -> list[Member]:
        """The channel's members as readers; a channel shared with another organisation
        (Slack Connect) counts as having an external member, whoever is listed."""

        def fetch() -> list[Member]:
            channel = self.call("conversations.info", channel=channel_id).get("channel") or {}
            shared = isinstance(channel, dict) and bool(channel.get("is_ext_shared"))
            ids = list(self._member_ids(channel_id))
            with ThreadPoolExecutor(self._member_lookups, thread_name_prefix="slack-users") as pool:
                found = list(pool.map(lambda user_id: self._member(team_id, user_id), ids))
            return [Member(f"{channel_id}:shared", EXTERNAL), *found] if shared else found

        try:
            return self._memberships.members(slack_scope(team_id, channel_id), fetch)
        except SlackDeliveryError as exc:
            if exc.refused:
                raise MembersUnreadable(
                    f"Slack will not list {channel_id}'s members: {exc}"
                ) from exc
            raise

    def _member(self, team_id: str, user_id: str) -> Member:
        if user_id in (self.bot_user_id, SLACKBOT):
            return Member(user_id, NOT_A_READER)

        def fetch() -> Member:
            try:
                found = self.call("users.info", user=user_id).get("user")
            except SlackDeliveryError as exc:
                if exc.error in ("user_not_found", "user_not_visible"):
                    return Member(user_id, UNRESOLVED)
                raise
            user = found if isinstance(found, dict) else {}
            return slack_member(user_id, user, team_id, self.bot_user_id)

        return self._memberships.person(f"slack:{team_id}:{user_id}", fetch)

    def _member_ids(self, channel_id: str) -> Iterator[str]:
        cursor = ""
        while True:
            page = self.call(
                "conversations.members", channel=channel_id, limit=MEMBERS_PAGE, cursor=cursor
            )
            yield from (str(m) for m in page.get("members") or [])
            cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return

    def thread_history(self, question: SlackQuestion) -> list[Turn]:
        """Earlier messages of the thread, oldest first; the bot's own are the assistant's."""
        if question.thread_ts == question.message_ts:
            return []
        data = self.call(
            "conversations.replies", channel=question.channel_id, ts=question.thread_ts, limit=50
        )
        messages = data.get("messages") or []
        turns: list[Turn] = []
        for message in messages if isinstance(messages, list) else []:
            ts = message.get("ts")
            if ts in (question.message_ts, question.placeholder_ts) or float(ts) > float(
                question.message_ts
            ):
                continue
            text = str(message.get("text") or "").strip()
            if not text:
                continue
            from_bot = bool(message.get("bot_id")) or message.get("user") == self.bot_user_id
            turns.append(Turn("assistant" if from_bot else "user", text))
        return turns[-HISTORY_MESSAGES:]

    def deliver(
        self,
        question: SlackQuestion,
        messages: Sequence[SlackMessage],
        remember: bool = False,
        key: str | None = None,
    ) -> None:
        """Replace the placeholder with the first message; post any others in the thread.

        With `remember`, each message posted is recorded under the question (or `key`), so a
        task that runs again edits those messages instead of posting them twice.
        """
        if question.response_url:
            self._respond(question.response_url, messages)
            return
        posted = PostedMessages(self.kv if remember else None, key or question.question_id)
        for index, message in enumerate(messages):
            target = posted.target(index, question.placeholder_ts)
            if target:
                try:
                    self.call(
                        "chat.update",
                        channel=question.channel_id,
                        ts=target,
                        text=message.text,
                        blocks=message.blocks,
                    )
                    continue
                except SlackDeliveryError as exc:
                    if exc.error not in PLACEHOLDER_GONE:
                        raise
                    log.info("message %s gone; posting anew", target)
            posted.record(index, self._post(question, message))

    def whisper(self, question: SlackQuestion, messages: Sequence[SlackMessage]) -> None:
        """Ephemeral messages to the asker in the thread. They cannot be edited, so each is
        recorded once posted and a task that runs again skips it."""
        for index, message in enumerate(messages):
            key = f"private:{question.question_id}:{index}"
            if _remembered(self.kv, key):
                continue
            self.call(
                "chat.postEphemeral",
                channel=question.channel_id,
                user=question.user_id,
                thread_ts=question.thread_ts,
                text=message.text,
                blocks=message.blocks,
            )
            _remember(self.kv, key)

    def announce(self, question: SlackQuestion, text: str) -> None:
        """A plain message in the question's conversation (in its thread, if it has one)."""
        thread = {"thread_ts": question.thread_ts} if question.thread_ts else {}
        self.call(
            "chat.postMessage", channel=question.channel_id, text=text, unfurl_links=False, **thread
        )

    def _post(self, question: SlackQuestion, message: SlackMessage) -> str:
        posted = self.call(
            "chat.postMessage",
            channel=question.channel_id,
            thread_ts=question.thread_ts,
            text=message.text,
            blocks=message.blocks,
            unfurl_links=False,
        )
        return str(posted.get("ts") or "")

    def _respond(self, response_url: str, messages: Sequence[SlackMessage]) -> None:
        for message in messages:
            payload = {
                "response_type": "ephemeral",
                "replace_original": False,
                "text": message.text,
                "blocks": message.blocks,
            }
            try:
                httpx.post(response_url, json=payload, timeout=15).raise_for_status()
            except httpx.HTTPError as exc:
                raise SlackDeliveryError(f"Slack response_url failed: {exc}") from exc


class SlackThread:
    """One Slack question as a `ChatThread`: the workers' view of where the answer goes."""

    def __init__(self, question: SlackQuestion, delivery: SlackDelivery) -> None:
        self.question = question
        self.delivery = delivery

    @property
    def question_id(self) -> str:
        return self.question.question_id

    @property
    def text(self) -> str:
        return self.question.text

    def view(self, rules: ViewRules) -> View:
        """A DM is searched as its one reader; a channel or group DM as all its members."""
        question = self.question
        if question.is_direct or question.response_url:
            return private_view(one_reader(self.delivery.email_of(question.user_id), rules.reader))
        members = self.delivery.members(question.team_id, question.channel_id)
        return members_view(
            members, question.user_id, rules.reader, rules.org_domains, rules.max_members
        )

    def history(self) -> list[Turn]:
        return self.delivery.thread_history(self.question)

    def stream(self) -> AnswerStream | None:
        """Threads and DMs stream; `/ragbot ask` answers (ephemeral) do not."""
        if self.question.response_url:
            return None
        from workers.delivery.slack_stream import SlackAnswerStream

        return SlackAnswerStream(self.delivery, self.question, self._render)

    def _render(self, answer: Answer, view: View, note: str | None = None) -> list[SlackMessage]:
        context = answer_context(view, self.question.place, note, "\n")
        return slack_answer(answer, self.question_id, context=context)

    @property
    def conversation(self) -> str:
        return slack_conversation(self.question.team_id, self.question.channel_id)

    @property
    def revisable(self) -> bool:
        """`/ragbot ask` answers are ephemeral: once sent they cannot be edited."""
        return not self.question.response_url

    @property
    def where(self) -> str:
        if self.question.is_direct or self.question.channel_id.startswith("D"):
            return "a DM"
        return "a group DM" if self.question.is_group_dm else self.question.place

    def post_answer(self, answer: Answer, view: View, note: str | None = None) -> None:
        self.delivery.deliver(self.question, self._render(answer, view, note), remember=True)

    def post_follow_up(
        self, answer: Answer, view: View, heading: str, key: str, note: str | None = None
    ) -> None:
        messages = self._render(headed(answer, heading), view, note)
        unplaced = SlackQuestion.from_payload(self.question.to_payload() | {"placeholder_ts": None})
        self.delivery.deliver(unplaced, messages, remember=True, key=key)

    def post_private(self, answer: Answer) -> None:
        """An ephemeral reply in the thread that only the asker sees, sent once."""
        question = self.question
        header = PRIVATE_HEADER.format(place=question.place)
        messages = slack_answer(answer, self.question_id, context=header, feedback=False)
        self.delivery.whisper(question, messages)

    def post_notice(self, text: str, new_message: bool = False) -> None:
        question = self.question
        if new_message:
            question = SlackQuestion.from_payload(question.to_payload() | {"placeholder_ts": None})
        self.delivery.deliver(question, [slack_notice(text)])


PRIVATE_MEMORY_SECONDS = 7 * 86400


def _remembered(kv: KeyValue, key: str) -> bool:
    try:
        return kv.get(key) is not None
    except StoreUnavailable as exc:
        raise SlackDeliveryError(str(exc)) from exc


def _remember(kv: KeyValue, key: str) -> None:
    try:
        kv.put(key, "1", PRIVATE_MEMORY_SECONDS)
    except StoreUnavailable as exc:  # posted but not recorded: a retry may post it again
        log.warning("private reply %s not recorded: %s", key, exc)
