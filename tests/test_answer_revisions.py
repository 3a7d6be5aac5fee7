"""Revising an answer whose sources changed, without a chat: what is taken out, and that a
revisit run twice (a crash before it was marked done) posts under the same key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from connectors.base import Document
from tests.support import HashEmbedder
from workers.answer_records import AnswerRecords, posted_answer
from workers.answer_upkeep import AnswerUpkeep, UpkeepRules, without_sources
from workers.kv import MemoryKeyValue
from workers.rag.answer import Answer, AnswerService, SourceRef
from workers.rag.audience import Audience
from workers.rag.chunking import Chunker
from workers.rag.index_edge import EdgeIndex
from workers.rag.prompt import Turn
from workers.rag.retrieve import Retriever
from workers.rag.sparse import document_vector
from workers.rag.tokens import counter_for_model
from workers.readers import MEMBERS, View

WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def ref(n: int, document_id: str, title: str) -> SourceRef:
    return SourceRef(n, title, f"https://wiki/{document_id}", "files", WHEN, document_id)


def test_sentences_citing_a_removed_source_go_and_the_rest_are_renumbered() -> None:
    answer = Answer(
        "Meals are 40 euros a day [1]. The VPN is vpn-gw [2]. Book trains [1][3].\n\n"
        "Badges: front desk [3].",
        False,
        [ref(1, "a", "Travel"), ref(2, "b", "VPN"), ref(3, "c", "Facilities")],
    )
    left = without_sources(answer, {"c"})
    assert left.text == "Meals are 40 euros a day [1]. The VPN is vpn-gw [2]."
    assert [(s.n, s.title) for s in left.sources] == [(1, "Travel"), (2, "VPN")]
    only = without_sources(answer, {"a"})
    assert only.text == "The VPN is vpn-gw [1].\n\nBadges: front desk [2]."
    assert [s.title for s in only.sources] == ["VPN", "Facilities"]
    gone = without_sources(answer, {"a", "b", "c"})
    assert gone.abstained and not gone.sources and "40 euros" not in gone.text


class RecordingThread:
    """Stands in for a chat thread: records what would be posted where."""

    def __init__(self, posts: list[tuple[str, str, str]]) -> None:
        self.posts = posts

    question_id = "q1"
    text = "What is the meal allowance?"
    conversation = "slack:T1:C1"
    revisable = True

    def post_answer(self, answer: Answer, view: View, note: str | None = None) -> None:
        self.posts.append(("answer", "q1", f"{answer.text} | {note}"))

    def post_follow_up(
        self, answer: Answer, view: View, heading: str, key: str, note: str | None = None
    ) -> None:
        self.posts.append(("follow-up", key, f"{heading} | {answer.text}"))


def test_a_revisit_run_again_posts_its_update_under_the_same_key(tmp_path: Path) -> None:
    embedder = HashEmbedder()
    index = EdgeIndex(tmp_path / "index", embedder.dim)
    chunker = Chunker(counter_for_model("gpt-4o-mini"))

    def write(text: str, version: str) -> None:
        document = Document(
            "files:travel.md",
            "files",
            "Travel",
            "https://wiki/travel",
            text,
            WHEN,
            version,
            frozenset({"public"}),
        )
        chunks = chunker.chunk(document)
        texts = [c.embed_text for c in chunks]
        index.replace_document(
            document, chunks, embedder.embed_passages(texts), [document_vector(t) for t in texts]
        )
        index.commit()

    write("The daily meal allowance is 40 euros.", "v1")
    service = AnswerService(Retriever(embedder, index), None)
    audience = Audience.of({"public"})
    answer = service.answer("daily meal allowance", audience)
    assert "40 euros" in answer.text and answer.sources[0].version == "v1"
    kv = MemoryKeyValue()
    records = AnswerRecords(kv, 86400)
    view = View(audience, MEMBERS)
    records.save(
        posted_answer(
            "slack",
            {},
            "q1",
            "slack:T1:C1",
            "daily meal allowance",
            (Turn("user", "hi"),),
            view,
            answer,
        )
    )
    posts: list[tuple[str, str, str]] = []
    upkeep = AnswerUpkeep(
        index,
        records,
        kv,
        lambda: service,
        lambda _p, _q: RecordingThread(posts),  # type: ignore[arg-type,return-value]
        UpkeepRules(updates=True, daily_cap=5),
    )
    write("The daily meal allowance is 45 euros.", "v2")
    first = upkeep.after_sync("files")
    assert (first.updated, first.changed_documents) == (1, 1)
    follow_ups = [p for p in posts if p[0] == "follow-up"]
    assert len(follow_ups) == 1 and "45 euros" in follow_ups[0][2]
    assert any(p[0] == "answer" and "Outdated" in p[2] for p in posts)
    # Nothing changed since: a second sync does nothing at all.
    assert upkeep.after_sync("files").changed_documents == 0
    # A crash before the document was marked seen, with the old record still there: the same
    # update is posted under the same key, which the chat edits rather than posting anew.
    kv.delete("cited_state:files:travel.md")
    records.save(
        posted_answer("slack", {}, "q1", "slack:T1:C1", "daily meal allowance", (), view, answer)
    )
    upkeep.after_sync("files")
    keys = [p[1] for p in posts if p[0] == "follow-up"]
    assert len(keys) == 2 and keys[0] == keys[1], keys
    index.close()
