"""Answers that stay true: after a sync, revisit the answers whose cited documents changed.

- A cited document deleted, or no longer readable by everyone the answer was for: the answer is
  edited at once to drop the passages that cited it and the source itself, with a note. This is
  a leak fix, so neither the setting nor a channel's opt-out stops it.
- A cited document edited where the cited passages changed: the question is asked again for
  the same readers and the current answer is posted once in the thread as an update; the old
  answer is marked outdated. An edit that leaves the cited passages as they were changes
  nothing. Updates are batched per answer per sync, capped per conversation per day, and can be
  turned off by a setting or per conversation.

Exactly once: the update's messages are remembered under a key made of the answer and the
changed documents' versions, so a re-run sync or a redelivered task edits them instead of
posting again; a document's last seen version and readers are stored only after its answers
were revisited, so a crash part-way means the next sync finishes the job.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from workers.answer_records import (
    AnswerRecord,
    AnswerRecords,
    answer_json,
    document_state,
)
from workers.conversation_settings import updates_off_key
from workers.curation_store import load_curation
from workers.delivery.chat import ChatThread
from workers.kv import KeyValue
from workers.rag.answer import Answer, AnswerService, SourceRef, passage_print
from workers.rag.index import Index

log = logging.getLogger(__name__)

REMOVED_NOTE = "A source of this answer was removed or restricted on {date}."
OUTDATED_NOTE = "Outdated: {title} changed on {date}. The current answer is in a reply below."
UPDATE_HEADING = "Update: {title} changed on {date}. Here is the current answer."
NOTHING_LEFT = "The sources this answer stood on are no longer available to everyone here."
CAP_SECONDS = 2 * 86400
LOAD_BATCH = 500

_CITATION = re.compile(r"\[(\d{1,3})\]")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")


@dataclass
class UpkeepReport:
    cited_documents: int = 0
    changed_documents: int = 0
    answers_checked: int = 0
    redacted: int = 0
    updated: int = 0
    unchanged: int = 0
    held_back: int = 0  # over the conversation's daily cap, opted out, or updates turned off
    seconds: float = 0.0


@dataclass(frozen=True)
class UpkeepRules:
    updates: bool  # post an update when a cited passage changed
    daily_cap: int  # updates per conversation per day


def without_sources(answer: Answer, gone: set[str]) -> Answer:
    """The answer with every sentence citing a document in `gone` and those sources removed;
    the remaining citations renumbered 1..m."""
    numbers = {s.n for s in answer.sources if s.document_id in gone}
    kept = [s for s in answer.sources if s.document_id not in gone]
    renumber = {s.n: i + 1 for i, s in enumerate(kept)}
    lines: list[str] = []
    for line in answer.text.split("\n"):
        sentences = [
            sentence
            for sentence in _SENTENCE_END.split(line)
            if not {int(n) for n in _CITATION.findall(sentence)} & numbers
        ]
        lines.append(" ".join(sentences))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    text = _CITATION.sub(lambda m: f"[{renumber.get(int(m.group(1)), 0)}]", text)
    text = text.replace("[0]", "")
    if not kept or not _CITATION.search(text):
        return Answer(text=NOTHING_LEFT, abstained=True)
    sources = [replace(s, n=renumber[s.n]) for s in kept]
    return Answer(text=text, abstained=False, sources=sources)


class AnswerUpkeep:
    def __init__(
        self,
        index: Index,
        records: AnswerRecords,
        kv: KeyValue,
        service: Callable[[], AnswerService],
        threads: Callable[[str, dict[str, object]], ChatThread],
        rules: UpkeepRules,
    ) -> None:
        self.index = index
        self.records = records
        self.kv = kv
        self.service = service
        self.threads = threads
        self.rules = rules
        self._prints: dict[str, set[str]] = {}  # per sync: document -> its passages' prints

    def after_sync(self, source: str, now: datetime | None = None) -> UpkeepReport:
        started = time.perf_counter()
        now = now or datetime.now(UTC)
        report = UpkeepReport()
        cited = self.records.cited_documents(source)
        report.cited_documents = len(cited)
        if not cited:
            return report
        versions = self.index.document_versions(source)
        acls = self.index.document_acls(source)
        changed: dict[str, tuple[str | None, frozenset[str] | None]] = {}
        for document in cited:
            version = max(versions[document]) if versions.get(document) else None
            acl = acls.get(document) if version is not None else None
            if self.records.last_seen(document) != document_state(version, acl):
                changed[document] = (version, acl)
        report.changed_documents = len(changed)
        answers: dict[str, set[str]] = {}
        for document in changed:
            for question_id in self.records.citing(document):
                answers.setdefault(question_id, set()).add(document)
        self._prints = {}
        question_ids = sorted(answers)
        for start in range(0, len(question_ids), LOAD_BATCH):
            batch = question_ids[start : start + LOAD_BATCH]
            for question_id, record in zip(batch, self.records.load_many(batch), strict=True):
                documents = answers[question_id]
                if record is None:  # expired: stop looking it up
                    for document in documents:
                        self.records.uncite(document, question_id)
                    continue
                report.answers_checked += 1
                self._revisit(record, {d: changed[d] for d in documents}, now, report)
        for document, (version, acl) in changed.items():
            self.records.seen(document, document_state(version, acl))
        report.seconds = time.perf_counter() - started
        return report

    def _revisit(
        self,
        record: AnswerRecord,
        changed: dict[str, tuple[str | None, frozenset[str] | None]],
        now: datetime,
        report: UpkeepReport,
    ) -> None:
        answer = record.current()
        audience = record.view.audience
        date = now.date().isoformat()
        gone = {
            document
            for document, (version, acl) in changed.items()
            if version is None or acl is None or not audience.may_read(acl)
        }
        if any(s.document_id in gone for s in answer.sources):
            thread = self.threads(record.platform, record.payload)
            answer = without_sources(answer, gone)
            self._show(thread, record, answer, REMOVED_NOTE.format(date=date))
            for document in gone:
                self.records.uncite(document, record.question_id)
            record = replace(record, answer=answer_json(answer))
            self.records.save(record)
            report.redacted += 1
        edited = [
            s
            for s in answer.sources
            if s.document_id in changed
            and s.document_id not in gone
            and changed[s.document_id][0] != s.version
        ]
        if not edited:
            return
        moved = [s for s in edited if not self._passages_hold(s)]
        if not moved:  # edited elsewhere: the answer still stands on the same passages
            fresh = {s.document_id: changed[s.document_id] for s in edited}
            sources = [
                replace(
                    s,
                    version=fresh[s.document_id][0] or s.version,
                    acl=fresh[s.document_id][1] or s.acl,
                )
                if s.document_id in fresh
                else s
                for s in answer.sources
            ]
            self.records.revise(
                replace(record, answer=answer_json(replace(answer, sources=sources)))
            )
            report.unchanged += 1
            return
        if not self._may_update(record.conversation, date):
            report.held_back += 1
            return
        thread = self.threads(record.platform, record.payload)
        self._update(thread, record, answer, moved, changed, date)
        report.updated += 1

    def _passages_hold(self, source: SourceRef) -> bool:
        if not source.passages:
            return False
        held = self._prints.get(source.document_id)
        if held is None:  # once per document per sync, however many answers cite it
            held = {passage_print(text) for text in self.index.document_texts(source.document_id)}
            self._prints[source.document_id] = held
        return set(source.passages) <= held

    def _may_update(self, conversation: str, date: str) -> bool:
        if not self.rules.updates or self.kv.get(updates_off_key(conversation)) is not None:
            return False
        return any(
            self.kv.claim(f"answer_updates:{conversation}:{date}:{slot}", CAP_SECONDS)
            for slot in range(self.rules.daily_cap)
        )

    def _update(
        self,
        thread: ChatThread,
        record: AnswerRecord,
        answer: Answer,
        moved: list[SourceRef],
        changed: dict[str, tuple[str | None, frozenset[str] | None]],
        date: str,
    ) -> None:
        versions = sorted(f"{s.document_id}@{changed[s.document_id][0]}" for s in moved)
        digest = hashlib.sha256("\n".join(versions).encode()).hexdigest()[:12]
        key = f"{record.question_id}:update:{digest}"
        # The conversation's scope and hidden documents as they are now, like a new question.
        curation = load_curation(self.kv, record.conversation)
        fresh = self.service().answer(
            record.question, record.view.audience, record.turns, curation=curation
        )
        title = moved[0].title
        heading = UPDATE_HEADING.format(title=title, date=date)
        thread.post_follow_up(fresh, record.view, heading, key)
        self._show(thread, record, answer, OUTDATED_NOTE.format(title=title, date=date))
        self.records.save(
            replace(
                record,
                question_id=key,
                answer=answer_json(fresh),
                message_key=key,
                heading=heading,
                at=datetime.now(UTC).isoformat(),
                outdated=[*record.outdated, record.question_id],
            )
        )
        self.records.forget(record)
        log.info("%s: posted an update after %s changed", record.question_id, title)

    def _show(self, thread: ChatThread, record: AnswerRecord, answer: Answer, note: str) -> None:
        """Edit the messages that show `record` (the answer, or an earlier update)."""
        if record.heading:
            thread.post_follow_up(answer, record.view, record.heading, record.message_key, note)
        else:
            thread.post_answer(answer, record.view, note)
