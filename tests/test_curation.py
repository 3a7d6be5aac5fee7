"""Admins' curation of retrieval: how scope names are read and how far a boost may move."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.rag.curation import Curation, DocumentPreferences, normalize_place
from workers.rag.index import Hit

SOURCES = ("confluence", "gdrive", "files")


def hit(name: str, score: float) -> Hit:
    return Hit(
        chunk_id=f"{name}#0",
        document_id=name,
        source="files",
        title=name,
        url=f"https://wiki/{name}",
        updated_at=datetime(2026, 11, 1, tzinfo=UTC),
        text=name,
        breadcrumb="",
        score=score,
    )


def test_scope_names_are_read_the_way_admins_write_them() -> None:
    assert normalize_place("confluence:eng", SOURCES) == "confluence:ENG"
    assert normalize_place("confluence:~dana", SOURCES) == "confluence:~dana"
    assert normalize_place("Confluence", SOURCES) == "confluence"
    assert normalize_place("files:engineering", SOURCES) == "files:engineering/"
    assert normalize_place("files:/engineering/runbooks/", SOURCES) == "files:engineering/runbooks/"
    folder = "https://drive.google.com/drive/folders/1AbCdEfGhIjKlMnOp?usp=sharing"
    assert normalize_place(f"<gdrive:{folder}>", SOURCES) == "gdrive:1AbCdEfGhIjKlMnOp"
    assert normalize_place("gdrive:0ADriveId", SOURCES) == "gdrive:0ADriveId"
    assert normalize_place(folder, SOURCES) == "gdrive:1AbCdEfGhIjKlMnOp", "a bare Drive link"
    assert normalize_place("jira:ENG", SOURCES) is None
    assert normalize_place("", SOURCES) is None


def test_a_boost_reorders_near_ties_but_not_a_clear_lead() -> None:
    hits = [hit("best", 3.0), hit("close", 1.1), hit("near", 1.0), hit("far", 0.0), hit("z", 0.1)]
    boosted = Curation(boosted=frozenset({"https://wiki/near"})).lean(hits)
    assert [h.document_id for h in boosted][:3] == ["best", "near", "close"]
    buried = Curation(buried=frozenset({"https://wiki/close"})).lean(hits)
    order = [h.document_id for h in buried]
    assert order[:2] == ["best", "near"] and order.index("close") > order.index("near")
    assert [h.document_id for h in Curation().lean(hits)] == [h.document_id for h in hits]
    lifted_far = Curation(boosted=frozenset({"https://wiki/far"})).lean(hits)
    assert lifted_far[0].document_id == "best", "a boost is bounded: the clear lead stays first"


def test_preferences_become_a_curation() -> None:
    preferences = DocumentPreferences(
        {"https://a": "boost", "https://b": "bury", "https://c": "hide"}
    )
    curation = preferences.with_places({"files:eng/"})
    assert curation.boosted == {"https://a"} and curation.buried == {"https://b"}
    assert curation.hidden == {"https://c"} and curation.places == {"files:eng/"}
    assert curation.narrows and not DocumentPreferences().with_places(()).narrows
