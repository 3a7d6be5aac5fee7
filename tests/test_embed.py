from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import HANDBOOK
from tests.fakes.openai_api import FakeOpenAI, Fault
from workers.rag.audience import Audience
from workers.rag.embed import EmbeddingError, LocalE5Embedder, OpenAIEmbedder
from workers.rag.llm import make_client
from workers.readers import org_wide
from workers.runtime import Runtime
from workers.settings import Settings


def embedder_for(fake: FakeOpenAI, retries: int = 2) -> OpenAIEmbedder:
    client = make_client(fake.api_key, fake.base_url, timeout=5, max_retries=retries)
    return OpenAIEmbedder(client, "text-embedding-3-small", batch_size=100)


def test_openai_embeddings_are_batched_ordered_and_normalised(fake_openai: FakeOpenAI) -> None:
    texts = [f"passage number {i}" for i in range(250)]
    vectors = embedder_for(fake_openai).embed_passages(texts)
    assert vectors.shape == (250, 1536)
    assert fake_openai.count("/embeddings") == 3
    assert [len(body["input"]) for _, body in fake_openai.requests] == [100, 100, 50]
    single = embedder_for(fake_openai).embed_query("passage number 7")
    assert np.allclose(vectors[7], single, atol=1e-6), "results follow input order, not reply order"
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_openai_embeddings_retry_429_and_5xx(fake_openai: FakeOpenAI) -> None:
    fake_openai.faults = [Fault(status=429, retry_after="0"), Fault(status=502)]
    vectors = embedder_for(fake_openai).embed_passages(["a", "b"])
    assert vectors.shape[0] == 2 and fake_openai.count("/embeddings") == 3


def test_batches_go_to_the_server_several_at_once_and_come_back_in_order(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.embed_seconds = 0.2
    client = make_client(fake_openai.api_key, fake_openai.base_url, timeout=5, max_retries=2)
    texts = [f"passage number {i}" for i in range(12)]
    concurrent = OpenAIEmbedder(client, "text-embedding-3-small", batch_size=2, concurrency=3)
    vectors = concurrent.embed_passages(texts)
    assert fake_openai.max_embeds_in_flight == 3 and fake_openai.count("/embeddings") == 6
    one_by_one = OpenAIEmbedder(client, "text-embedding-3-small", batch_size=2)
    assert np.allclose(vectors, one_by_one.embed_passages(texts), atol=1e-6)
    fake_openai.faults = [Fault(status=429, retry_after="0")]  # one batch is throttled once
    assert np.allclose(concurrent.embed_passages(texts), vectors, atol=1e-6)
    assert fake_openai.count("/embeddings") == 6 + 6 + 7, "the throttled batch was sent again"


def test_openai_embedding_failure_is_an_embedding_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.faults = [Fault(status=500)] * 3
    with pytest.raises(EmbeddingError):
        embedder_for(fake_openai).embed_passages(["a"])


def test_local_model_matches_meaning_across_english_and_korean() -> None:
    model = LocalE5Embedder()
    passages = model.embed_passages(
        [
            "연차 휴가는 Workday에서 신청합니다.",
            "The deploy pipeline runs on Argo CD.",
            "Hotels cost 180 EUR.",
        ]
    )
    assert passages.shape == (3, model.dim)
    query = model.embed_query("How do I request annual leave?")
    assert int(np.argmax(passages @ query)) == 0


def test_an_api_embedding_model_is_used_end_to_end_when_configured(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    settings = Settings(
        ragbot_data_dir=tmp_path,
        files_path=HANDBOOK,
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
        ragbot_embed_model="text-embedding-3-small",
    )
    with Runtime(settings) as runtime:
        assert runtime.embedder.name == "openai-text-embedding-3-small"
        report = runtime.syncer().sync(runtime.connector("files"))
        assert fake_openai.count("/embeddings") >= 1
        embedded = sum(
            len(body["input"])
            for path, body in fake_openai.requests
            if path.endswith("/embeddings")
        )
        assert embedded == report.chunks_embedded
        assert (tmp_path / "index" / "openai-text-embedding-3-small").is_dir()
        retriever = runtime.answer_service().retriever
        hits = retriever.search("VPN-E42 certificate", Audience.of(org_wide([])), 3).hits
        assert hits[0].title == "Remote Work and VPN"


def test_an_embeddings_server_of_its_own_needs_no_chat_model(tmp_path: Path) -> None:
    """`RAGBOT_EMBED_URL`: a GPU text-embeddings server, say, with answers still extractive."""
    server = FakeOpenAI(api_key="tei-key").start()
    try:
        settings = Settings(
            ragbot_data_dir=tmp_path,
            files_path=HANDBOOK,
            openai_api_key=None,
            ragbot_embed_url=server.base_url,
            ragbot_embed_api_key="tei-key",
            ragbot_embed_model="text-embedding-3-small",
            ragbot_embed_batch_size=8,
            ragbot_embed_concurrency=2,
        )
        assert not settings.llm_configured
        with Runtime(settings) as runtime:
            report = runtime.syncer().sync(runtime.connector("files"))
            batches = [len(body["input"]) for _, body in server.requests]
            assert report.indexed == 12 and sum(batches) == report.chunks_embedded
            assert max(batches) == 8 and len(batches) < report.indexed, (
                "passages of several documents share a batch"
            )
            retriever = runtime.answer_service().retriever
            hits = retriever.search("VPN-E42 certificate", Audience.of(org_wide([])), 3).hits
            assert hits[0].title == "Remote Work and VPN"
    finally:
        server.stop()
