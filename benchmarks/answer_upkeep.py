"""The cost of checking recorded answers after a sync, beside the sync's own time.

Usage: python -m benchmarks.answer_upkeep [--documents D] [--answers A] [--changed C]

A docs folder of D two-section documents is synced with the default local embedder; A answers
are recorded in Redis (`REDIS_URL`, database 14, emptied before and after), each citing the first
section of one to three random documents. Then C documents have their *second* section edited
and are synced again: every answer citing them is looked up and its cited passages compared,
and none needs an update, so the figure is the check alone (no model, no chat).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from workers.answer_records import AnswerRecords, posted_answer
from workers.answer_upkeep import AnswerUpkeep, UpkeepRules
from workers.kv import RedisKeyValue
from workers.rag.answer import Answer, SourceRef, passage_print
from workers.rag.audience import Audience
from workers.readers import MEMBERS, View, org_wide
from workers.runtime import Runtime
from workers.settings import Settings

FILLER = " ".join(f"Clause {n} applies to every team and every office." for n in range(20))


def document(i: int, revision: int) -> str:
    return (
        f"# Policy {i}\n\n## Part one\n\nFact {i}: the allowance for case {i} is {i % 97} "
        f"euros. {FILLER}\n\n## Part two\n\nRevision {revision} of the notes for case {i}. "
        f"{FILLER}\n"
    )


class CountingStore(RedisKeyValue):
    """Counts the store operations the check makes."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self.calls: Counter[str] = Counter()

    def __getattribute__(self, name: str) -> Any:
        if name in (
            "get",
            "get_many",
            "put",
            "members",
            "add_member",
            "remove_member",
            "claim",
            "delete",
        ):
            object.__getattribute__(self, "calls")[name] += 1
        return object.__getattribute__(self, name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--answers", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=100)
    args = parser.parse_args()
    store_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14").rsplit("/", 1)[0] + "/14"
    client = redis.Redis.from_url(store_url)
    client.flushdb()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory(prefix="ragbot-upkeep-") as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for i in range(args.documents):
            (docs / f"policy-{i}.md").write_text(document(i, 1))
        settings = Settings(ragbot_data_dir=Path(tmp) / "data", files_path=docs)
        with Runtime(settings) as runtime:
            started = time.perf_counter()
            first = runtime.syncer().sync(runtime.connector("files"))
            print(f"first sync: {first.summary()} in {time.perf_counter() - started:.1f} s")
            kv = CountingStore(client)
            records = AnswerRecords(kv, 86400)
            index = runtime.index
            cited: dict[str, tuple[str, str]] = {}  # document -> (version, its part one)
            versions = index.document_versions("files")
            for i in range(args.documents):
                doc_id = f"files:policy-{i}.md"
                part_one = next(t for t in index.document_texts(doc_id) if "Part one" in t)
                cited[doc_id] = (next(iter(versions[doc_id])), passage_print(part_one))
            view = View(Audience.of(org_wide(["acme.com"])), MEMBERS)
            when = datetime.now(UTC)
            started = time.perf_counter()
            for n in range(args.answers):
                chosen = rng.sample(sorted(cited), rng.randint(1, 3))
                sources = [
                    SourceRef(
                        k + 1,
                        d,
                        f"https://docs/{d}",
                        "files",
                        when,
                        d,
                        frozenset({"public"}),
                        cited[d][0],
                        (cited[d][1],),
                    )
                    for k, d in enumerate(chosen)
                ]
                answer = Answer(
                    " ".join(f"Fact [{k + 1}]." for k in range(len(chosen))), False, sources
                )
                records.save(
                    posted_answer("slack", {}, f"q{n}", "slack:T:C", "q", (), view, answer)
                )
            print(f"recorded {args.answers} answers in {time.perf_counter() - started:.1f} s")
            for i in rng.sample(range(args.documents), args.changed):
                (docs / f"policy-{i}.md").write_text(document(i, 2))
            time.sleep(0.05)
            started = time.perf_counter()
            report = runtime.syncer().sync(runtime.connector("files"))
            sync_seconds = time.perf_counter() - started
            kv.calls.clear()
            upkeep = AnswerUpkeep(
                index,
                records,
                kv,
                runtime.answer_service,
                lambda _platform, _payload: None,  # type: ignore[arg-type,return-value]
                UpkeepRules(updates=True, daily_cap=20),
            )
            check = upkeep.after_sync("files")
            print(
                f"sync of {args.changed} edited documents: {report.summary()}; {sync_seconds:.2f} s"
            )
            print(
                f"answer check: {check.seconds:.3f} s ({100 * check.seconds / sync_seconds:.1f}% "
                f"of the sync); {check.changed_documents} changed of {check.cited_documents} cited "
                f"documents, {check.answers_checked} answers checked, {check.unchanged} unchanged, "
                f"{check.updated} updated; store operations {dict(kv.calls)}"
            )
    client.flushdb()


if __name__ == "__main__":
    main()
