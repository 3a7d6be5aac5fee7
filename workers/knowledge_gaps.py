"""Questions the documents did not answer, for the people who own the documents (`gaps`).

`/ragbot gaps [days]` reads the period's entries of the gap log (`workers/gap_log.py`), merges
rewordings of one question by embedding similarity (greedy, in the order asked, against each
topic's first wording) and lists the most-asked topics with how often they went unanswered or
were marked unhelpful, and where they were asked.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from workers.gap_log import UNANSWERED, UNHELPFUL, Gap, read_gaps
from workers.kv import KeyValue
from workers.rag.embed import Embedder

MAX_GROUPED = 2_000  # newest entries of the period that are embedded and grouped
SHOWN = 10
PLACES_SHOWN = 3


@dataclass
class Topic:
    wordings: Counter[str] = field(default_factory=Counter)
    why: Counter[str] = field(default_factory=Counter)
    where: Counter[str] = field(default_factory=Counter)

    @property
    def asked(self) -> int:
        return sum(self.wordings.values())

    @property
    def question(self) -> str:
        """Its most common wording (the shortest of equals)."""
        return min(self.wordings, key=lambda text: (-self.wordings[text], len(text), text))


def topics(gaps: Sequence[Gap], embedder: Embedder) -> list[Topic]:
    """The gaps grouped by what they ask, most asked first."""
    gaps = list(gaps)[-MAX_GROUPED:]
    if not gaps:
        return []
    vectors = np.vstack([embedder.embed_query(gap.question) for gap in gaps]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-9)
    heads: list[int] = []  # each topic's first wording, by position in `gaps`
    grouped: list[Topic] = []
    for position, gap in enumerate(gaps):
        chosen = None
        if heads:
            similarity = vectors[heads] @ vectors[position]
            best = int(np.argmax(similarity))
            if similarity[best] >= embedder.same_question_similarity:
                chosen = grouped[best]
        if chosen is None:
            heads.append(position)
            chosen = Topic()
            grouped.append(chosen)
        chosen.wordings[gap.question.strip()] += 1
        chosen.why[gap.why] += 1
        chosen.where[gap.where] += 1
    return sorted(grouped, key=lambda topic: -topic.asked)


def report(found: Sequence[Topic], days: int) -> str:
    period = "the last day" if days == 1 else f"the last {days} days"
    if not found:
        return f"No unanswered or unhelpful answers in {period}. :tada:"
    total = sum(topic.asked for topic in found)
    lines = [
        f"*Knowledge gaps in {period}*: {total} question{'s' if total != 1 else ''} "
        f"on {len(found)} topic{'s' if len(found) != 1 else ''}, most asked first."
    ]
    for number, topic in enumerate(found[:SHOWN], start=1):
        counts = []
        if topic.why[UNANSWERED]:
            counts.append(f"{topic.why[UNANSWERED]} unanswered")
        if topic.why[UNHELPFUL]:
            counts.append(f"{topic.why[UNHELPFUL]} 👎")
        places = [where for where, _ in topic.where.most_common(PLACES_SHOWN)]
        more = len(topic.where) - len(places)
        where = ", ".join(places) + (f" and {more} more" if more > 0 else "")
        lines.append(
            f"{number}. “{topic.question}” asked {topic.asked}× ({', '.join(counts)}) in {where}"
        )
    if len(found) > SHOWN:
        lines.append(f"…and {len(found) - SHOWN} more topics.")
    return "\n".join(lines)


def gaps_report(kv: KeyValue, embedder: Embedder, days: int) -> str:
    """The owners' report for the last `days` days."""
    return report(topics(read_gaps(kv, time.time() - days * 86400), embedder), days)
