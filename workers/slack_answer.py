"""Answer one Slack question: who may see the reply, what the thread said, the answer, the reply.

Failures the asker can do nothing about still get a clear message in the thread, never silence.
Slack itself failing is raised, so the task can retry delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.render import slack_answer, slack_notice
from bot.slack_delivery import SlackDelivery
from bot.slack_questions import SlackQuestion
from workers.answer import Answer, AnswerService
from workers.embed import EmbeddingError
from workers.index import IndexUnavailable
from workers.llm import LLMError
from workers.readers import ReaderError, for_email, org_wide, public_only

log = logging.getLogger(__name__)

INDEX_DOWN = "I couldn't reach the docs index just now. Please try again in a minute."
LLM_DOWN = "I couldn't reach the language model just now. Please try again in a minute."


def reader_principals(
    question: SlackQuestion,
    delivery: SlackDelivery,
    org_domains: list[str],
    reader: Callable[[str], frozenset[str]] = for_email,
) -> frozenset[str]:
    """A DM is searched as its one reader; a channel as everyone who can read the reply."""
    if question.is_direct or question.response_url:
        email = delivery.email_of(question.user_id)
        try:
            return reader(email) if email else public_only()
        except ReaderError:
            return public_only()
    if delivery.is_shared_externally(question.channel_id):
        return public_only()
    return org_wide(org_domains)


@dataclass(frozen=True)
class Outcome:
    kind: str  # "answered" | "abstained" | "index_down" | "llm_down"
    answer: Answer | None = None


def answer_slack_question(
    question: SlackQuestion,
    service: AnswerService,
    delivery: SlackDelivery,
    org_domains: list[str],
    reader: Callable[[str], frozenset[str]] = for_email,
) -> Outcome:
    """Answers and replies; a failure of the index or the model is explained in the thread."""
    principals = reader_principals(question, delivery, org_domains, reader)
    history = delivery.thread_history(question)
    try:
        answer = service.answer(question.text, principals, history)
    except (IndexUnavailable, EmbeddingError) as exc:
        log.warning("answer %s failed: %s", question.question_id, exc.__class__.__name__)
        delivery.deliver(question, [slack_notice(INDEX_DOWN)])
        return Outcome("index_down")
    except LLMError as exc:
        log.warning("answer %s failed: %s", question.question_id, exc)
        delivery.deliver(question, [slack_notice(LLM_DOWN)])
        return Outcome("llm_down")
    delivery.deliver(question, slack_answer(answer, question.question_id))
    return Outcome("abstained" if answer.abstained else "answered", answer)
