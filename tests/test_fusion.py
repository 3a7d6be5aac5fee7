"""Fusion follows the evidence in the two rankings, never the question's language."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import HANDBOOK
from workers.rag.audience import Audience
from workers.rag.fusion import fuse, lexical_coverage
from workers.rag.index import Hit
from workers.readers import org_wide
from workers.runtime import Runtime
from workers.settings import Settings


def hit(name: str, score: float, text: str = "") -> Hit:
    return Hit(
        chunk_id=name,
        document_id=name,
        source="files",
        title=name,
        url=f"file:///{name}",
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        text=text or name,
        breadcrumb="",
        score=score,
    )


def ids(hits: list[Hit]) -> list[str]:
    return [h.chunk_id for h in hits]


def test_coverage_is_the_share_of_question_terms_the_best_passage_holds() -> None:
    passage = hit("p", 1.0, "Reset the XR-200 filter monthly.")
    assert lexical_coverage("reset XR-200 filter", passage) == 1.0
    # reset, xr-200, xr, 200 held; pump not ("how", "to", "the" are not terms)
    assert lexical_coverage("how to reset the XR-200 pump", passage) == 4 / 5
    assert lexical_coverage("필터 교체 주기", passage) == 0.0
    assert lexical_coverage("reset", None) == 0.0


def test_without_lexical_coverage_the_dense_order_stands() -> None:
    dense = [hit("a", 0.86), hit("b", 0.85), hit("c", 0.84)]
    sparse = [hit("c", 40.0), hit("x", 2.0), hit("y", 1.0)]
    assert ids(fuse(dense, sparse, coverage=0.0))[:3] == ["a", "b", "c"]


def test_a_passage_standing_out_on_one_side_beats_a_flat_other_side() -> None:
    flat_dense = [hit(n, 0.850 - i * 0.001) for i, n in enumerate("abcdefgh")]
    decisive_sparse = [hit("h", 30.0)] + [hit(n, 3.0 - i * 0.1) for i, n in enumerate("pqrstu")]
    assert ids(fuse(flat_dense, decisive_sparse, coverage=1.0))[0] == "h"
    # The same lexical list counts for little when its best passage holds few of the terms.
    assert ids(fuse(flat_dense, decisive_sparse, coverage=0.1))[0] == "a"


def test_every_passage_of_either_list_is_kept_once() -> None:
    dense = [hit("a", 0.9), hit("b", 0.8)]
    sparse = [hit("b", 5.0), hit("c", 4.0)]
    assert sorted(ids(fuse(dense, sparse, coverage=0.5))) == ["a", "b", "c"]
    assert ids(fuse(dense, [], coverage=0.0)) == ["a", "b"]
    assert ids(fuse([], sparse, coverage=1.0)) == ["b", "c"]


def test_a_question_no_passage_shares_a_word_with_is_ranked_by_the_dense_side(
    handbook_data_dir: Path,
) -> None:
    """Across languages nothing lexical matches: the dense side alone carries the question."""
    settings = Settings(
        ragbot_data_dir=handbook_data_dir,
        files_path=HANDBOOK,
        redis_url=None,
        openai_api_key=None,
    )  # type: ignore[call-arg]
    reader = Audience.of(org_wide(["acme.com"]))
    with Runtime(settings) as runtime:
        retriever = runtime.answer_service().retriever
        question = "welfare points"  # the handbook says it only in Korean (복지 포인트)
        assert not retriever.search(question, reader, mode="sparse").hits
        dense = retriever.search(question, reader, limit=5, mode="dense").hits
        hybrid = retriever.search(question, reader, limit=5).hits
    assert ids(hybrid) == ids(dense) and hybrid[0].title == "복리후생 안내"
