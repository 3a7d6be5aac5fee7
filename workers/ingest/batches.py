"""Where a sync's passages get embedded while the sync goes on listing, splitting and writing.

A sync hands each batch over and takes the vectors back in the order it sent them, so writes
and checkpoints keep the source's order however many batches are out at once. Two places:
the sync's own embedder on a thread beside it (the default: one batch embeds while the one
before is written), or embedding workers on the `embed` queue (workers/embed_fanout.py).
"""

from __future__ import annotations

import time
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from workers.rag.embed import Embedder, Vectors


@dataclass(frozen=True)
class EmbeddedBatch:
    vectors: Vectors
    seconds: float  # spent embedding (not waiting in a queue)


class PendingBatch(Protocol):
    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` (0: just look); True once `result` would return at once, with
        the vectors or with the error that stopped them."""
        ...

    def result(self) -> EmbeddedBatch:
        """The batch's vectors, in the order its texts were sent; raises EmbeddingError."""
        ...


class BatchEmbedding(Protocol):
    @property
    def in_flight(self) -> int:
        """How many batches may be out at once before the sync waits for the oldest."""
        ...

    def submit(self, texts: list[str]) -> PendingBatch: ...

    def close(self) -> None:
        """Give up on batches not yet taken back (the sync failed or ended)."""
        ...


class EmbeddingThread:
    """The sync's own embedder on one thread: embedding and writing overlap, nothing else."""

    in_flight = 2

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ragbot-embed")

    def submit(self, texts: list[str]) -> PendingBatch:
        return _ThreadBatch(self._executor.submit(self._embed, texts))

    def _embed(self, texts: list[str]) -> EmbeddedBatch:
        started = time.perf_counter()
        vectors = self._embedder.embed_passages(texts)
        return EmbeddedBatch(vectors, time.perf_counter() - started)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class _ThreadBatch:
    def __init__(self, future: Future[EmbeddedBatch]) -> None:
        self._future = future

    def wait(self, seconds: float) -> bool:
        futures.wait([self._future], timeout=seconds)
        return self._future.done()

    def result(self) -> EmbeddedBatch:
        return self._future.result()
