"""One contract, both backends: the embedded engine and qdrant-client (`:memory:` stands in for
a server)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from connectors.base import Document
from tests.support import HashEmbedder
from workers.rag.audience import Audience
from workers.rag.chunking import Chunker
from workers.rag.curation import UNCURATED, Curation
from workers.rag.index import Index
from workers.rag.index_edge import EdgeIndex
from workers.rag.index_server import ServerIndex
from workers.rag.retrieve import Retriever
from workers.rag.sparse import document_vector
from workers.rag.tokens import counter_for_model

EMBEDDER = HashEmbedder()
PUBLIC = Audience.of({"public"})
CHUNKER = Chunker(counter_for_model("gpt-4o-mini"), max_tokens=120, target_tokens=100)


@pytest.fixture(params=["edge", "server"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    backend: Index
    if request.param == "edge":
        backend = EdgeIndex(tmp_path / "index", EMBEDDER.dim)
    else:
        backend = ServerIndex(QdrantClient(location=":memory:"), "ragbot_test", EMBEDDER.dim)
    yield backend
    backend.close()


def doc(
    doc_id: str, text: str, acl: set[str], version: str = "v1", source: str = "files"
) -> Document:
    return Document(
        id=doc_id,
        source=source,
        title=doc_id,
        url=f"https://example.com/{doc_id}",
        text=text,
        updated_at=datetime(2026, 11, 1, 10, tzinfo=UTC),
        version=version,
        acl=frozenset(acl),
    )


def write(index: Index, document: Document) -> int:
    chunks = CHUNKER.chunk(document)
    texts = [c.embed_text for c in chunks]
    index.replace_document(
        document, chunks, EMBEDDER.embed_passages(texts), [document_vector(t) for t in texts]
    )
    return len(chunks)


def doc_ids(index: Index, question: str, principals: set[str], *others: set[str]) -> set[str]:
    """What a reader (with `others`: everyone of several readers) finds."""
    audience = Audience.everyone_of([principals, *others])
    found = Retriever(EMBEDDER, index).search(question, audience, limit=20)
    return {h.document_id for h in found.hits}


def test_search_never_returns_what_the_reader_may_not_see(index: Index) -> None:
    write(index, doc("public", "salary bands are reviewed in october", {"public"}))
    write(
        index,
        doc("hr", "salary bands for staff engineers", {"group:files:hr", "user:dana@acme.com"}),
    )
    write(index, doc("acme", "salary bands all employees know", {"domain:acme.com"}))
    write(index, doc("nobody", "salary bands secret", set()))

    assert doc_ids(index, "salary bands", {"public"}) == {"public"}
    assert doc_ids(index, "salary bands", {"public", "domain:acme.com"}) == {"public", "acme"}
    assert doc_ids(index, "salary bands", {"public", "user:dana@acme.com"}) == {"public", "hr"}
    assert doc_ids(index, "salary bands", {"group:files:hr"}) == {"hr"}
    assert doc_ids(index, "salary bands", set()) == set()
    for mode in ("dense", "sparse"):
        found = Retriever(EMBEDDER, index).search("salary", PUBLIC, 20, mode)  # type: ignore[arg-type]
        assert {h.document_id for h in found.hits} <= {"public"}


def test_replacing_a_document_leaves_no_stale_chunk(index: Index) -> None:
    long_text = "\n\n".join(f"Paragraph {i} about the old deploy process." for i in range(60))
    write(index, doc("guide", long_text, {"public"}))
    write(index, doc("other", "unrelated text", {"public"}))
    assert index.stats("files").chunks > 2
    write(index, doc("guide", "The new deploy process is one command.", {"public"}, version="v2"))

    assert index.document_versions("files") == {"guide": {"v2"}, "other": {"v1"}}
    assert index.stats("files").chunks == 2
    hits = Retriever(EMBEDDER, index).search("old deploy process", PUBLIC, 20).hits
    assert all("old deploy" not in h.text for h in hits)


def test_deleting_removes_every_chunk_of_the_document_only(index: Index) -> None:
    write(index, doc("a", "\n\n".join(f"alpha {i} " * 30 for i in range(10)), {"public"}))
    write(index, doc("b", "beta text", {"public"}))
    write(index, doc("c", "gamma text", {"public"}, source="confluence"))
    index.delete_document("a")
    assert index.document_versions("files") == {"b": {"v1"}}
    index.delete_source("files")
    assert index.document_versions("files") == {}
    assert index.stats("confluence").documents == 1


def test_hits_carry_what_a_citation_needs(index: Index) -> None:
    write(index, doc("policy", "# Leave\n\nAnnual leave is 25 days.", {"public"}))
    hit = Retriever(EMBEDDER, index).search("annual leave days", PUBLIC, 5).hits[0]
    assert (hit.document_id, hit.title, hit.url, hit.source) == (
        "policy",
        "policy",
        "https://example.com/policy",
        "files",
    )
    assert hit.updated_at == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert "25 days" in hit.text and hit.chunk_id == "policy#0"
    assert hit.acl == {"public"}


DANA = {"public", "domain:acme.com", "user:dana@acme.com", "group:confluence:hr"}
SAM = {"public", "domain:acme.com", "user:sam@acme.com", "group:confluence:hr"}
LEE = {"public", "domain:acme.com", "user:lee@acme.com", "group:confluence:eng"}
ACLS = {
    "public": {"public"},
    "acme": {"domain:acme.com"},
    "hr": {"group:confluence:hr", "user:ceo@acme.com"},
    "eng": {"group:confluence:eng"},
    "dana-sam": {"user:dana@acme.com", "user:sam@acme.com"},
    "dana": {"user:dana@acme.com"},
    "nobody": set(),
}


def test_an_audience_finds_only_what_every_reader_may_open(index: Index) -> None:
    for name, acl in ACLS.items():
        write(index, doc(name, f"quarterly planning notes for {name}", acl))
    index.commit()
    question = "quarterly planning notes"
    assert doc_ids(index, question, DANA) == {"public", "acme", "hr", "dana-sam", "dana"}
    assert doc_ids(index, question, DANA, SAM) == {"public", "acme", "hr", "dana-sam"}
    assert doc_ids(index, question, DANA, SAM, LEE) == {"public", "acme"}
    assert doc_ids(index, question, DANA, DANA, SAM) == doc_ids(index, question, DANA, SAM)
    assert doc_ids(index, question, LEE, {"public"}) == {"public"}
    assert doc_ids(index, question, DANA, set()) == set(), "an unidentified reader: nothing"
    nobody = Retriever(EMBEDDER, index).search(question, Audience(()), limit=20)
    assert nobody.hits == [], "no readers at all: nothing"


def test_the_index_and_the_audience_agree_on_every_passage(index: Index) -> None:
    """`Audience.may_read` (used to tell what the asker alone may see) is the index's rule."""
    for name, acl in ACLS.items():
        write(index, doc(name, f"office move checklist for {name}", acl))
    index.commit()
    readers = [DANA, SAM, LEE, {"public"}, {"user:ceo@acme.com"}]
    for size in range(1, 4):
        for start in range(len(readers)):
            group = [readers[(start + i) % len(readers)] for i in range(size)]
            audience = Audience.everyone_of(group)
            found = doc_ids(index, "office move checklist", *group)
            assert found == {n for n, acl in ACLS.items() if audience.may_read(acl)}, group


def test_principals_lists_every_reader_named_in_a_source(index: Index) -> None:
    write(index, doc("a", "alpha", {"public", "group:confluence:hr"}, source="confluence"))
    write(index, doc("b", "beta", {"user:dana@acme.com"}, source="confluence"))
    write(index, doc("c", "gamma", {"group:files:ops"}))
    assert index.principals("confluence") == {"public", "group:confluence:hr", "user:dana@acme.com"}


def test_changing_the_acl_keeps_the_chunks_and_moves_who_sees_them(index: Index) -> None:
    chunks = write(index, doc("plan", "the reorg plan for next quarter", {"user:ceo@acme.com"}))
    index.set_acl("plan", frozenset({"domain:acme.com"}))
    index.commit()
    assert doc_ids(index, "reorg plan", {"user:ceo@acme.com"}) == set()
    assert doc_ids(index, "reorg plan", {"domain:acme.com"}) == {"plan"}
    assert index.stats("files").chunks == chunks
    assert index.document_versions("files") == {"plan": {"v1"}}
    assert index.document_acls("files") == {"plan": frozenset({"domain:acme.com"})}


def test_searches_run_while_another_thread_writes(index: Index) -> None:
    """A worker answers on many threads while a sync writes: no error, never a foreign hit."""
    import threading

    if isinstance(index, ServerIndex):
        # qdrant-client's in-memory mode stands in for a server in these tests and is not
        # thread-safe itself; a real server is reached over HTTP, which is.
        pytest.skip("qdrant-client's local mode is single-threaded")

    write(index, doc("files:public.md", "Trains for trips under four hours.", {"public"}))
    failures: list[BaseException] = []
    leaked: list[str] = []
    done = threading.Event()

    def search() -> None:
        retriever = Retriever(EMBEDDER, index)
        while not done.is_set():
            try:
                for hit in retriever.search("trains for trips", PUBLIC, limit=5).hits:
                    if hit.document_id != "files:public.md":
                        leaked.append(hit.document_id)
            except BaseException as exc:
                failures.append(exc)
                return

    readers = [threading.Thread(target=search) for _ in range(4)]
    for reader in readers:
        reader.start()
    for n in range(40):
        write(
            index,
            doc(f"files:hr-{n % 5}.md", f"Trains for trips, band {n}.", {"group:hr"}, f"v{n}"),
        )
    index.commit()
    done.set()
    for reader in readers:
        reader.join(30)
    assert failures == [] and leaked == []
    assert set(index.document_versions("files")) == {"files:public.md"} | {
        f"files:hr-{n}.md" for n in range(5)
    }


def test_the_index_knows_its_average_passage_length(index: Index) -> None:
    """BM25 normalises by the corpus's own average length, which the index keeps."""
    from workers.rag.sparse import terms

    assert index.term_statistics() == (0, 0)
    first = doc("files:a.md", "Trains for trips under four hours.", {"public"})
    second = doc("files:b.md", "# Hotels\n\nHotels cost at most 180 EUR a night.", {"group:hr"})
    lengths = []
    for document in (first, second):
        write(index, document)
        lengths += [len(terms(c.embed_text)) for c in CHUNKER.chunk(document)]
    assert index.term_statistics() == (len(lengths), sum(lengths))


def placed(doc_id: str, source: str, places: tuple[str, ...], acl: set[str]) -> Document:
    return replace(
        doc(doc_id, f"travel booking rules for {doc_id}", acl, source=source), places=places
    )


def test_a_scope_keeps_the_search_to_its_places_and_hidden_documents_never_show(
    index: Index,
) -> None:
    write(index, placed("eng-page", "confluence", ("ENG",), {"public"}))
    write(index, placed("hr-page", "confluence", ("HR",), {"public"}))
    write(index, placed("runbook", "files", ("eng/", "eng/runbooks/"), {"public"}))
    write(index, placed("top", "files", (), {"public"}))
    write(index, placed("eng-secret", "confluence", ("ENG",), {"user:dana@acme.com"}))
    index.commit()
    retriever = Retriever(EMBEDDER, index)

    def found(curation: Curation, audience: Audience = PUBLIC) -> set[str]:
        hits = retriever.search("travel booking rules", audience, 20, curation=curation).hits
        return {hit.document_id for hit in hits}

    everything = {"eng-page", "hr-page", "runbook", "top"}
    assert found(UNCURATED) == everything
    assert found(Curation(places=frozenset({"confluence:ENG"}))) == {"eng-page"}
    assert found(Curation(places=frozenset({"files:eng/"}))) == {"runbook"}
    assert found(Curation(places=frozenset({"files"}))) == {"runbook", "top"}
    both = Curation(places=frozenset({"confluence:ENG", "files:eng/runbooks/"}))
    assert found(both) == {"eng-page", "runbook"}
    assert found(Curation(places=frozenset({"confluence:SALES"}))) == set()
    hidden = Curation(hidden=frozenset({"https://example.com/hr-page"}))
    assert found(hidden) == everything - {"hr-page"}
    # A scope never widens what a reader may open: Dana's own page joins, no one else's.
    dana = Audience.of({"public", "user:dana@acme.com"})
    assert found(Curation(places=frozenset({"confluence:ENG"})), dana) == {"eng-page", "eng-secret"}
    assert found(
        Curation(places=frozenset({"confluence:ENG"})),
        Audience.everyone_of([{"public", "user:dana@acme.com"}, {"public"}]),
    ) == {"eng-page"}


def test_boosts_and_burials_reach_the_ranking_and_passages_are_read_last(index: Index) -> None:
    for name in ("alpha", "beta", "gamma"):
        write(index, doc(name, f"visitor badge rules for the {name} office", {"public"}))
    index.commit()
    retriever = Retriever(EMBEDDER, index)

    def first(curation: Curation) -> str:
        return retriever.search("visitor badge rules", PUBLIC, 3, curation=curation).hits[0].title

    plain = first(UNCURATED)
    others = sorted({"alpha", "beta", "gamma"} - {plain})
    assert first(Curation(boosted=frozenset({f"https://example.com/{others[0]}"}))) == others[0]
    assert first(Curation(buried=frozenset({f"https://example.com/{plain}"}))) != plain
    candidates = index.search_dense(EMBEDDER.embed_query("visitor badge rules"), PUBLIC, 3)
    read = index.hits(candidates)
    assert [h.point_id for h in read] == [c.point_id for c in candidates], "in the search's order"
    assert [h.score for h in read] == [c.score for c in candidates]
    titles = {h.point_id: h.title for h in read}
    linked = index.linked(candidates, {f"https://example.com/{plain}"})
    assert {titles[point] for point in linked} == {plain}
    assert set(linked.values()) == {f"https://example.com/{plain}"}
    index.delete_document("beta")
    assert sorted(h.title for h in index.hits(candidates)) == ["alpha", "gamma"]
