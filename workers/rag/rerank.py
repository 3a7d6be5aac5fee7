"""An optional second stage: a reranking model re-orders the fused top passages.

No reranker that runs offline without downloading weights was found, so this calls a
reranking server (vLLM, Infinity, Jina, Cohere: `POST <RAGBOT_RERANK_URL>/rerank` with
`{model, query, documents, top_n}` answering `{"results": [{"index", "relevance_score"}]}`).
A reranker that fails or is slow never fails an answer: the fused order is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

log = logging.getLogger(__name__)


class RerankError(Exception):
    """The reranking server could not be reached or answered something else than a ranking."""


class RemoteReranker:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/rerank"
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=timeout, headers=headers)

    def order(self, query: str, texts: Sequence[str]) -> list[int]:
        """Indices of `texts`, most relevant first (every index exactly once)."""
        if not texts:
            return []
        body = {"model": self.model, "query": query, "documents": list(texts), "top_n": len(texts)}
        try:
            response = self._client.post(self.url, json=body)
            response.raise_for_status()
            results = response.json()["results"]
            scored = {int(r["index"]): float(r["relevance_score"]) for r in results}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise RerankError(f"the reranker failed: {exc.__class__.__name__}") from exc
        if not scored or not set(scored) <= set(range(len(texts))):
            raise RerankError("the reranker answered with indices out of range")
        ranked = sorted(scored, key=lambda i: -scored[i])
        return ranked + [i for i in range(len(texts)) if i not in scored]
