"""Answer one chat question: who may see the reply, what the thread said, the answer, the reply.

Failures the asker can do nothing about still get a clear message in the thread, never silence.
The platform itself failing (`DeliveryError`) is raised, so the task can retry delivery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.chat import ChatThread, Reader
from workers.answer import Answer, AnswerService
from workers.embed import EmbeddingError
from workers.index import IndexUnavailable
from workers.llm import LLMError

log = logging.getLogger(__name__)

INDEX_DOWN = "I couldn't reach the docs index just now. Please try again in a minute."
LLM_DOWN = "I couldn't reach the language model just now. Please try again in a minute."


@dataclass(frozen=True)
class Outcome:
    kind: str  # "answered" | "abstained" | "index_down" | "llm_down"
    answer: Answer | None = None


def answer_in_thread(
    thread: ChatThread, service: AnswerService, org_domains: list[str], reader: Reader
) -> Outcome:
    """Answers and replies; a failure of the index or the model is explained in the thread."""
    principals = thread.reader_principals(org_domains, reader)
    history = thread.history()
    try:
        answer = service.answer(thread.text, principals, history)
    except (IndexUnavailable, EmbeddingError) as exc:
        log.warning("answer %s failed: %s", thread.question_id, exc.__class__.__name__)
        thread.post_notice(INDEX_DOWN)
        return Outcome("index_down")
    except LLMError as exc:
        log.warning("answer %s failed: %s", thread.question_id, exc)
        thread.post_notice(LLM_DOWN)
        return Outcome("llm_down")
    thread.post_answer(answer)
    return Outcome("abstained" if answer.abstained else "answered", answer)
