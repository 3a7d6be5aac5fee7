"""The knowledge-gaps log: every abstained answer and every 👎, capped, in the shared store.

Light on purpose: the answer task and the front doors write it (`workers/knowledge_gaps.py`
reads and groups it), and where the weekly digest goes is kept here too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from workers.kv import KeyValue

GAP_LOG = "knowledge_gaps"
GAP_LOG_ENTRIES = 20_000  # about a quarter's worth for a busy company; older ones drop off
QUESTION_CHARS = 300
DEFAULT_DAYS = 7
MAX_DAYS = 365
UNANSWERED = "unanswered"
UNHELPFUL = "unhelpful"
DIGEST_KEY = "gaps_digest"  # platform -> the question payload of the conversation to post in
DIGEST_DAYS = 7
GAPS_FAILED = "I couldn't gather the knowledge gaps just now. Please try again in a minute."


@dataclass(frozen=True)
class Gap:
    at: float
    question: str
    where: str
    why: str  # UNANSWERED | UNHELPFUL


def gap_entry(question: str, where: str, why: str, at: float | None = None) -> str:
    """One log entry, as the answer task and the front doors append it."""
    return json.dumps(
        {
            "at": time.time() if at is None else at,
            "question": question[:QUESTION_CHARS],
            "where": where,
            "why": why,
        }
    )


def record_gap(kv: KeyValue, question: str, where: str, why: str) -> None:
    kv.log(GAP_LOG, gap_entry(question, where, why), GAP_LOG_ENTRIES)


def read_gaps(kv: KeyValue, since: float) -> list[Gap]:
    """The period's entries, oldest first; unreadable ones are passed over."""
    found: list[Gap] = []
    for raw in kv.recent(GAP_LOG):
        try:
            row = json.loads(raw)
            gap = Gap(float(row["at"]), str(row["question"]), str(row["where"]), str(row["why"]))
        except (ValueError, KeyError, TypeError):
            continue
        if gap.at >= since and gap.question.strip():
            found.append(gap)
    return found


def digest_targets(kv: KeyValue) -> dict[str, dict[str, object]]:
    """Where the weekly digest goes: {platform: the conversation's question payload}."""
    return decode_targets(kv.get(DIGEST_KEY))


def decode_targets(raw: str | None) -> dict[str, dict[str, object]]:
    """The stored digest targets; none when unset or unreadable."""
    try:
        targets = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return targets if isinstance(targets, dict) else {}
