"""Builds the pipeline's parts from Settings: the one place that chooses implementations.

Heavy parts (embedding model, index, tokenizer, the Qdrant server client) are created on first
use and closed with the runtime, so each command pays only for what it uses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import openai
import redis

from connectors.base import Connector
from workers.ingest.batches import BatchEmbedding
from workers.ingest.sources import build_connector, configured_sources
from workers.ingest.state import FileStateStore, RedisStateStore, StateStore
from workers.ingest.status import SourceStatus, source_statuses
from workers.ingest.sync import DEFAULT_BATCH_CHUNKS, Syncer
from workers.rag.answer import AnswerService, Writer
from workers.rag.chunking import Chunker
from workers.rag.embed import Embedder, LocalE5Embedder, OpenAIEmbedder
from workers.rag.index import Index
from workers.rag.index_edge import EdgeIndex
from workers.rag.llm import ChatModel, context_window, make_client
from workers.rag.rerank import RemoteReranker
from workers.rag.retrieve import Retriever
from workers.rag.tokens import BpeTokenCounter, counter_for_model
from workers.readers import for_email
from workers.settings import NotConfigured, Settings

if TYPE_CHECKING:
    from celery import Celery

T = TypeVar("T")
log = logging.getLogger(__name__)
EMBED_RETRIES = 2
# Passages per batch handed to an embedding worker: small enough to spread a few thousand
# over many workers, large enough that queueing costs nothing beside embedding (seconds each).
FANOUT_BATCH_CHUNKS = 64


class Runtime:
    """Shared by every thread of a worker: each part is built once, under a lock (two threads
    opening the embedded index at once would collide on its lock file)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._index: Index | None = None
        self._lock = threading.RLock()
        self._built: dict[str, Any] = {}

    def _once(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            return cast(T, self._built[name])

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None

    @property
    def counter(self) -> BpeTokenCounter:
        return self._once("counter", lambda: counter_for_model(self.settings.ragbot_chat_model))

    @property
    def openai_client(self) -> openai.OpenAI:
        key = self.settings.openai_api_key
        if key is None:
            raise NotConfigured("OPENAI_API_KEY is not set")
        return self._once(
            "openai",
            lambda: make_client(
                key.get_secret_value(),
                self.settings.openai_base_url,
                timeout=self.settings.ragbot_llm_timeout_seconds,
            ),
        )

    @property
    def embeddings_client(self) -> openai.OpenAI:
        """The embeddings server's client: `RAGBOT_EMBED_URL` when set, else the chat model's
        endpoint. Two retries (429 and 5xx, honouring Retry-After): a sync can wait."""
        settings = self.settings
        if not settings.ragbot_embed_url:
            return self.openai_client
        key = settings.secret("ragbot_embed_api_key") or "none"  # local servers take any key
        return self._once(
            "embeddings",
            lambda: make_client(
                key,
                settings.ragbot_embed_url,
                timeout=settings.ragbot_llm_timeout_seconds,
                max_retries=EMBED_RETRIES,
            ),
        )

    @property
    def embedder(self) -> Embedder:
        def build() -> Embedder:
            if self.settings.embed_model == "local":
                return LocalE5Embedder()
            settings = self.settings
            return OpenAIEmbedder(
                self.embeddings_client,
                settings.embed_model,
                settings.ragbot_embed_batch_size,
                settings.ragbot_embed_concurrency,
            )

        return self._once("embedder", build)

    @property
    def index(self) -> Index:
        with self._lock:
            if self._index is None:
                self._index = self._open_index()
            return self._index

    def _open_index(self) -> Index:
        settings = self.settings
        if settings.qdrant_url:
            # Imported here: the client and its gRPC stack cost ~80 MB unused when embedded.
            from qdrant_client import QdrantClient

            from workers.rag.index_server import ServerIndex

            api_key = settings.secret("qdrant_api_key")
            client = QdrantClient(url=settings.qdrant_url, api_key=api_key, timeout=30)
            return ServerIndex(client, f"ragbot_{self.embedder.name}", self.embedder.dim)
        path = settings.ragbot_data_dir / "index" / self.embedder.name
        return EdgeIndex(path, self.embedder.dim)

    @property
    def state(self) -> StateStore:
        def build() -> StateStore:
            if self.settings.redis_url:
                return RedisStateStore(redis.Redis.from_url(self.settings.redis_url))
            return FileStateStore(self.settings.ragbot_data_dir / "sync-state.json")

        return self._once("state", build)

    @property
    def chunker(self) -> Chunker:
        return self._once("chunker", lambda: Chunker(self.counter))

    def syncer(self) -> Syncer:
        settings = self.settings
        fan_out = settings.ragbot_embed_fanout and bool(settings.redis_url)
        if settings.ragbot_embed_fanout and not fan_out:
            log.warning("RAGBOT_EMBED_FANOUT needs REDIS_URL: syncs embed in-process")
        if fan_out:
            batch_chunks = FANOUT_BATCH_CHUNKS
        elif settings.embed_model == "local":
            batch_chunks = DEFAULT_BATCH_CHUNKS
        else:  # enough passages per batch to keep every concurrent request to a server busy
            batch_chunks = settings.ragbot_embed_batch_size * settings.ragbot_embed_concurrency
        return Syncer(
            self.index,
            self.embedder,
            self.chunker,
            self.state,
            max_chunks_per_document=settings.ragbot_max_chunks_per_document,
            batch_chunks=batch_chunks,
            embedding=self._queued_embedding if fan_out else None,
        )

    def _queued_embedding(self) -> BatchEmbedding:
        """Embedding workers on the task queue, reached with this runtime's settings."""
        from workers import celery_app
        from workers.embed_fanout import QueuedEmbedding

        def app() -> Celery:
            try:  # a worker's own app, when it was configured with these settings
                if celery_app.configured_settings() is self.settings:
                    return celery_app.app
            except RuntimeError:
                pass
            return celery_app.make_celery(self.settings)  # a script, a benchmark

        settings = self.settings
        return QueuedEmbedding(
            self._once("celery", app),
            self.embedder,
            settings.ragbot_embed_batches_in_flight,
            settings.ragbot_embed_wait_seconds,
        )

    def answer_service(self) -> AnswerService:
        writer = None
        if self.settings.llm_configured:
            model = self.settings.ragbot_chat_model
            writer = Writer(
                chat=ChatModel(
                    self.openai_client, model, max_tokens=self.settings.ragbot_answer_tokens
                ),
                counter=self.counter,
                context_tokens=context_window(model, self.settings.ragbot_context_tokens),
                answer_tokens=self.settings.ragbot_answer_tokens,
            )
        return AnswerService(Retriever(self.embedder, self.index, reranker=self.reranker), writer)

    @property
    def reranker(self) -> RemoteReranker | None:
        settings = self.settings
        if not settings.ragbot_rerank_url:
            return None
        url = settings.ragbot_rerank_url
        return self._once(
            "reranker",
            lambda: RemoteReranker(
                url, settings.ragbot_rerank_model, settings.secret("ragbot_rerank_api_key")
            ),
        )

    def configured_sources(self) -> list[str]:
        return configured_sources(self.settings)

    def statuses(self) -> list[SourceStatus]:
        """Health of every configured or previously synced source (opens the index)."""
        return source_statuses(self.configured_sources(), self.index, self.state)

    def reader(self, email: str) -> frozenset[str]:
        """One person's principals, with the groups each source last reported for them."""
        groups: set[str] = set()
        for source in self.configured_sources():
            groups.update(self.state.load(source).memberships.get(email.strip().lower(), []))
        return for_email(email, groups)

    def connector(self, name: str) -> Connector:
        return build_connector(name, self.settings)
