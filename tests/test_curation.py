"""Admins' curation of retrieval: how scope names are read and how far a boost may move."""

from __future__ import annotations

from workers.rag.curation import DocumentPreferences, normalize_place
from workers.rag.fusion import lean
from workers.rag.index import Candidate

SOURCES = ("confluence", "gdrive", "files")


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
    ranked = [
        Candidate("best", 3.0),
        Candidate("close", 1.1),
        Candidate("near", 1.0),
        Candidate("far", 0.0),
        Candidate("z", 0.1),
    ]

    def order(boosted: set[str], buried: frozenset[str] = frozenset()) -> list[str]:
        return [c.point_id for c in lean(ranked, boosted, buried)]

    assert order({"near"})[:3] == ["best", "near", "close"]
    buried = order(set(), {"close"})
    assert buried[:2] == ["best", "near"] and buried.index("close") > buried.index("near")
    assert order(set()) == [c.point_id for c in ranked]
    assert order({"far"})[0] == "best", "a boost is bounded: the clear lead stays first"


def test_preferences_become_a_curation() -> None:
    preferences = DocumentPreferences(
        {"https://a": "boost", "https://b": "bury", "https://c": "hide"}
    )
    curation = preferences.with_places({"files:eng/"})
    assert curation.boosted == {"https://a"} and curation.buried == {"https://b"}
    assert curation.hidden == {"https://c"} and curation.places == {"files:eng/"}
    assert curation.narrows and not DocumentPreferences().with_places(()).narrows
