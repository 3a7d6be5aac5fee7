"""A first sync at the speed of the cluster: batches go to embedding workers on the `embed`
queue, and the sync (the index's one writer) writes their vectors back in order.

An embedding worker never opens the index: it embeds texts and returns vectors, named by the
model that made them so that a worker on another model cannot slip foreign vectors into an
index. Its batch is acknowledged only when done, so a worker killed mid-batch loses nothing
(another worker takes it after the visibility timeout), and a batch embedded twice is written
once: the sync takes each batch's vectors back exactly once, and writes replace a document's
passages by id.
"""

from __future__ import annotations

import base64
import time
from contextlib import suppress
from typing import Any

import numpy as np
from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from workers import jobs
from workers.ingest.batches import EmbeddedBatch, PendingBatch
from workers.rag.embed import Embedder, EmbeddingError

_BROKER_ERRORS = (OperationalError, RedisError, OSError)
POLL_SECONDS = 0.05
# What a worker replies: {"model": name, "dim": n, "vectors": base64 float32, "seconds": s}.
EmbeddedPayload = dict[str, Any]


def embed_batch(embedder: Embedder, texts: list[str]) -> EmbeddedPayload:
    """An embedding worker's half: texts in, vectors out (4 bytes a number, not JSON floats)."""
    started = time.perf_counter()
    vectors = np.ascontiguousarray(embedder.embed_passages(texts), dtype="<f4")
    return {
        "model": embedder.name,
        "dim": embedder.dim,
        "vectors": base64.b64encode(vectors.tobytes()).decode("ascii"),
        "seconds": time.perf_counter() - started,
    }


def read_batch(payload: EmbeddedPayload, model: str, dim: int, count: int) -> EmbeddedBatch:
    """The writer's half: the vectors, if they come from the index's own model."""
    if payload.get("model") != model or payload.get("dim") != dim:
        raise EmbeddingError(
            f"an embedding worker uses {payload.get('model')} ({payload.get('dim')} dimensions) "
            f"but this index holds {model} ({dim}); give every worker the same "
            "RAGBOT_EMBED_MODEL and RAGBOT_EMBED_URL"
        )
    raw = base64.b64decode(payload["vectors"])
    vectors = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(-1, dim)
    if len(vectors) != count:
        raise EmbeddingError(f"an embedding worker returned {len(vectors)} vectors for {count}")
    return EmbeddedBatch(vectors, float(payload.get("seconds", 0.0)))


class QueuedEmbedding:
    """Batches handed to embedding workers through the task queue, many out at once."""

    def __init__(
        self, app: Celery, embedder: Embedder, in_flight: int, wait_seconds: float
    ) -> None:
        self._app = app
        self._model, self._dim = embedder.name, embedder.dim
        self.in_flight = in_flight
        self._wait = wait_seconds
        self._out: list[AsyncResult] = []

    def submit(self, texts: list[str]) -> PendingBatch:
        try:
            result = self._app.send_task(jobs.EMBED, args=[texts])  # routed to `embed`
        except _BROKER_ERRORS as exc:
            raise EmbeddingError(
                f"could not queue a batch for the embedding workers: {exc}"
            ) from exc
        self._out.append(result)
        return _QueuedBatch(self, result, len(texts), time.monotonic() + self._wait)

    def _take(self, result: AsyncResult, count: int, deadline: float) -> EmbeddedBatch:
        try:
            if not _ready(result, deadline - time.monotonic()):
                raise EmbeddingError(
                    f"no embedding worker returned a batch within {self._wait:g} s of its "
                    "sending; is one running (`ragbot worker -Q embed`)?"
                )
            if not result.successful():
                raise EmbeddingError(f"an embedding worker failed: {result.result}")
            payload = result.result
        except _BROKER_ERRORS as exc:
            raise EmbeddingError(f"lost touch with the embedding workers: {exc}") from exc
        finally:
            self._forget(result)
        return read_batch(payload, self._model, self._dim, count)

    def _forget(self, result: AsyncResult) -> None:
        if result in self._out:
            self._out.remove(result)
        with suppress(*_BROKER_ERRORS):
            result.forget()  # vectors are large: do not leave them for `result_expires`

    def close(self) -> None:
        """Batches not taken back are revoked (a worker yet to start one skips it)."""
        for result in list(self._out):
            with suppress(*_BROKER_ERRORS):
                result.revoke()
            self._forget(result)


class _QueuedBatch:
    def __init__(
        self, owner: QueuedEmbedding, result: AsyncResult, count: int, deadline: float
    ) -> None:
        self._owner, self._result, self._count = owner, result, count
        self._deadline = deadline

    def wait(self, seconds: float) -> bool:
        """True once the vectors are back, or the deadline passed (`result` then raises)."""
        until = min(time.monotonic() + seconds, self._deadline)
        try:
            return _ready(self._result, until - time.monotonic()) or (
                time.monotonic() >= self._deadline
            )
        except _BROKER_ERRORS:
            return True  # `result` says what went wrong

    def result(self) -> EmbeddedBatch:
        return self._owner._take(self._result, self._count, self._deadline)


def _ready(result: AsyncResult, seconds: float) -> bool:
    """Whether the task finished, looking again every POLL_SECONDS for up to `seconds`.

    Polled rather than `result.get()`: Celery's Redis result consumer is one pub/sub connection
    per process and is not safe across a worker's threads (two sources syncing at once); a
    state read is one GET."""
    until = time.monotonic() + seconds
    while not result.ready():
        if time.monotonic() >= until:
            return False
        time.sleep(POLL_SECONDS)
    return True
