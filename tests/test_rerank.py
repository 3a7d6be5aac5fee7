"""The optional reranking stage, against a fake Cohere-compatible server over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HANDBOOK
from tests.fakes.rerank_api import FakeReranker
from workers.rag.audience import Audience
from workers.readers import org_wide
from workers.runtime import Runtime
from workers.settings import Settings

QUESTION = "How many days of annual leave do I get?"


@pytest.fixture
def reranker() -> Iterator[FakeReranker]:
    fake = FakeReranker(
        scorer=lambda query, text: float("Remote Work and VPN" in text.split("\n\n", 1)[0])
    ).start()
    yield fake
    fake.stop()


def search(data_dir: Path, reranker: FakeReranker | None) -> list[str]:
    settings = Settings(
        ragbot_data_dir=data_dir,
        files_path=HANDBOOK,
        redis_url=None,
        openai_api_key=None,
        ragbot_rerank_url=reranker.url if reranker else None,
        ragbot_rerank_api_key=reranker.api_key if reranker else None,
    )
    with Runtime(settings) as runtime:
        retriever = runtime.answer_service().retriever
        hits = retriever.search(QUESTION, Audience.of(org_wide(["acme.com"])), limit=8).hits
        return [hit.title for hit in hits]


def test_the_reranker_orders_the_fused_passages(
    handbook_data_dir: Path, reranker: FakeReranker
) -> None:
    fused = search(handbook_data_dir, None)
    assert fused[0] == "Leave Policy" and "Remote Work and VPN" in fused[1:]
    reranked = search(handbook_data_dir, reranker)
    assert reranked[0] == "Remote Work and VPN"
    (request,) = reranker.requests
    assert request["query"] == QUESTION and len(request["documents"]) >= len(fused)


def test_a_failing_reranker_keeps_the_fused_order(
    handbook_data_dir: Path, reranker: FakeReranker
) -> None:
    reranker.failing = True
    assert search(handbook_data_dir, reranker) == search(handbook_data_dir, None)
    assert reranker.requests, "the reranker was asked"
