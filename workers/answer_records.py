"""What each posted answer stood on, kept so that a sync changing a cited document can revisit it.

Per answer: where it was posted (platform, thread, the message key), whom it was answered for
(the audience's principals and its context line), the question and the thread before it, and
the answer itself with each source's document id, version, ACL and cited passages. Indexes kept
beside the records: the answers citing each document, the cited documents of each source, and
each cited document's version and ACL as last seen, so a sync's check reads only the answers
whose documents changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from workers.kv import KeyValue
from workers.rag.answer import Answer, SourceRef
from workers.rag.audience import Audience
from workers.rag.prompt import Turn
from workers.readers import View


@dataclass(frozen=True)
class AnswerRecord:
    question_id: str  # the record's own id: the question's, or an update's
    platform: str
    payload: dict[str, Any]  # the question as the front door handed it: reaches its thread
    conversation: str  # "slack:<team>:<channel>", "teams:<tenant>:<conversation>"
    question: str
    history: list[tuple[str, str]]  # (role, text) turns the answer was written after
    readers: list[list[str]]  # the audience: each reader's principals
    scope: str
    reason: str
    answer: dict[str, Any]  # `answer_json`
    message_key: str  # the key its posted messages are remembered under
    heading: str = ""  # an update's first line, kept when the update is edited again
    at: str = ""
    outdated: list[str] = field(default_factory=list)  # answers this one replaced

    @property
    def view(self) -> View:
        return View(Audience.everyone_of(self.readers), self.scope, self.reason)

    @property
    def turns(self) -> list[Turn]:
        return [
            Turn("assistant" if role == "assistant" else "user", text)
            for role, text in self.history
        ]

    def current(self) -> Answer:
        return answer_from_json(self.answer)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> AnswerRecord:
        data = json.loads(raw)
        data["history"] = [tuple(turn) for turn in data.get("history", [])]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def posted_answer(
    platform: str,
    payload: dict[str, Any],
    question_id: str,
    conversation: str,
    question: str,
    history: tuple[Turn, ...],
    view: View,
    answer: Answer,
) -> AnswerRecord:
    """The record of an answer just posted in place of its question's placeholder."""
    return AnswerRecord(
        question_id=question_id,
        platform=platform,
        payload=payload,
        conversation=conversation,
        question=question,
        history=[(turn.role, turn.text) for turn in history],
        readers=[sorted(reader) for reader in view.audience.readers],
        scope=view.scope,
        reason=view.reason,
        answer=answer_json(answer),
        message_key=question_id,
        at=datetime.now(UTC).isoformat(),
    )


def answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "text": answer.text,
        "abstained": answer.abstained,
        "sources": [
            {
                "n": s.n,
                "title": s.title,
                "url": s.url,
                "source": s.source,
                "updated_at": s.updated_at.isoformat(),
                "document_id": s.document_id,
                "acl": sorted(s.acl),
                "version": s.version,
                "passages": list(s.passages),
            }
            for s in answer.sources
        ],
    }


def answer_from_json(data: dict[str, Any]) -> Answer:
    return Answer(
        text=str(data["text"]),
        abstained=bool(data["abstained"]),
        sources=[
            SourceRef(
                n=int(s["n"]),
                title=str(s["title"]),
                url=str(s["url"]),
                source=str(s["source"]),
                updated_at=datetime.fromisoformat(s["updated_at"]),
                document_id=str(s["document_id"]),
                acl=frozenset(s.get("acl") or ()),
                version=str(s.get("version") or ""),
                passages=tuple(s.get("passages") or ()),
            )
            for s in data["sources"]
        ],
    )


def document_state(version: str | None, acl: frozenset[str] | None) -> str:
    """A document's version and readers as one short string; None parts mean it is gone."""
    text = json.dumps([version, sorted(acl) if acl is not None else None])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class AnswerRecords:
    """The records in the shared store (Redis, or the process's own store without it)."""

    def __init__(self, kv: KeyValue, retention_seconds: int) -> None:
        self.kv = kv
        self.ttl = retention_seconds

    def save(self, record: AnswerRecord) -> None:
        self.kv.put(f"answer_record:{record.question_id}", record.to_json(), self.ttl)
        for source in record.current().sources:
            document = source.document_id
            self.kv.add_member(f"cited_by:{document}", record.question_id, self.ttl)
            self.kv.add_member(f"cited_documents:{source.source}", document, self.ttl)
            if self.kv.get(f"cited_state:{document}") is None:
                state = document_state(source.version, source.acl)
                self.kv.put(f"cited_state:{document}", state, self.ttl)

    def load(self, question_id: str) -> AnswerRecord | None:
        raw = self.kv.get(f"answer_record:{question_id}")
        return AnswerRecord.from_json(raw) if raw else None

    def load_many(self, question_ids: list[str]) -> list[AnswerRecord | None]:
        """In one round trip: a sync may touch thousands of answers."""
        raws = self.kv.get_many([f"answer_record:{q}" for q in question_ids])
        return [AnswerRecord.from_json(raw) if raw else None for raw in raws]

    def revise(self, record: AnswerRecord) -> None:
        """Rewrite a record whose sources are the same documents (versions or readers moved)."""
        self.kv.put(f"answer_record:{record.question_id}", record.to_json(), self.ttl)

    def forget(self, record: AnswerRecord) -> None:
        """The answer no longer stands on its sources (replaced by an update)."""
        for source in record.current().sources:
            self.kv.remove_member(f"cited_by:{source.document_id}", record.question_id)
        self.kv.delete(f"answer_record:{record.question_id}")

    def cited_documents(self, source: str) -> set[str]:
        return self.kv.members(f"cited_documents:{source}")

    def citing(self, document_id: str) -> set[str]:
        return self.kv.members(f"cited_by:{document_id}")

    def uncite(self, document_id: str, question_id: str) -> None:
        self.kv.remove_member(f"cited_by:{document_id}", question_id)

    def last_seen(self, document_id: str) -> str | None:
        return self.kv.get(f"cited_state:{document_id}")

    def seen(self, document_id: str, state: str) -> None:
        self.kv.put(f"cited_state:{document_id}", state, self.ttl)
