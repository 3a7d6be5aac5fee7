"""The one settings object: the only place that reads the environment.

Variable names are part of the public interface (see the README); add freely, never rename.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from connectors.limits import MB, ParseLimits


def _split_csv(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [str(part).strip() for part in value if str(part).strip()]
    raise TypeError(f"expected a comma-separated list, got {type(value).__name__}")


CsvList = Annotated[list[str], NoDecode]


class NotConfigured(Exception):
    """A command needs a source or service that the environment does not configure."""


class Settings(BaseSettings):
    """Runtime configuration. Unset means the embedded default where one exists."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    ragbot_data_dir: Path = Path(".ragbot")
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    redis_url: str | None = None

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    ragbot_chat_model: str = "gpt-4o-mini"
    ragbot_embed_model: str | None = None
    # An OpenAI-compatible embeddings server of its own (a GPU text-embeddings server), else
    # the chat model's endpoint (OPENAI_BASE_URL) serves RAGBOT_EMBED_MODEL.
    ragbot_embed_url: str | None = None
    ragbot_embed_api_key: SecretStr | None = None
    ragbot_embed_batch_size: int = Field(default=128, ge=1, le=2048)
    # Batches sent to the embeddings server at once during a sync.
    ragbot_embed_concurrency: int = Field(default=4, ge=1, le=64)
    # Syncs hand their batches to embedding workers on the `embed` queue (`ragbot worker -Q
    # embed`, any number of them) instead of embedding in the index worker; needs REDIS_URL.
    ragbot_embed_fanout: bool = False
    # Batches a fanned-out sync keeps out at once: at least twice the embedding workers.
    ragbot_embed_batches_in_flight: int = Field(default=16, ge=1, le=1024)
    # A fanned-out sync fails (and resumes from its checkpoint next time) when no embedding
    # worker has returned a batch within this long of its sending.
    ragbot_embed_wait_seconds: int = Field(default=900, ge=10)
    ragbot_context_tokens: int | None = Field(default=None, gt=0)
    ragbot_answer_tokens: int = Field(default=1024, gt=0)
    ragbot_llm_timeout_seconds: float = Field(default=20.0, gt=0)
    # An optional reranking server (Cohere-compatible `/rerank`: vLLM, Infinity, Jina, Cohere).
    ragbot_rerank_url: str | None = None
    ragbot_rerank_model: str = "rerank"
    ragbot_rerank_api_key: SecretStr | None = None

    ragbot_org_domains: CsvList = Field(default_factory=list)
    ragbot_admins: CsvList = Field(default_factory=list)
    # Channel answers draw on what every human member may open, up to this many members;
    # larger channels get company-wide documents. Membership is re-read after the TTL even
    # when a join or leave event was missed.
    ragbot_channel_max_members: int = Field(default=100, ge=1, le=10_000)
    ragbot_membership_ttl_seconds: int = Field(default=900, ge=1, le=86_400)
    # The asker alone is told what their own documents add to a channel answer.
    ragbot_private_addon: bool = True
    # Fair use: questions a minute per person and per conversation (admin commands are exempt);
    # placeholders say the asker's place in line once this many questions are waiting.
    ragbot_questions_per_minute: int = Field(default=10, ge=1, le=100_000)
    ragbot_conversation_questions_per_minute: int = Field(default=60, ge=1, le=100_000)
    ragbot_queue_position_from: int = Field(default=10, ge=1)
    # Slack's assistant side panel: the prompts offered when someone opens it ("|" between).
    ragbot_slack_suggested_prompts: str = (
        "How do I request time off?|What is our expense policy?|How do I set up the VPN?"
    )
    # Answers that stay true: what each answer cited is kept this long; when a sync changes a
    # cited passage the thread gets an update, at most this many per conversation per day.
    ragbot_answer_updates: bool = True
    ragbot_answer_retention_days: int = Field(default=90, ge=1, le=3650)
    ragbot_answer_updates_per_day: int = Field(default=20, ge=1, le=1000)

    files_path: Path | None = None

    # What one untrusted document may cost before it is skipped and reported.
    ragbot_max_file_mb: int = Field(default=20, ge=1)
    ragbot_max_inflated_mb: int = Field(default=100, ge=1)
    ragbot_max_archive_entries: int = Field(default=10_000, ge=10)
    ragbot_parse_seconds: float = Field(default=30.0, gt=0)
    ragbot_parse_memory_mb: int = Field(default=600, ge=256)
    ragbot_max_chunks_per_document: int = Field(default=500, ge=1)

    confluence_url: str | None = None
    confluence_username: str | None = None
    confluence_api_token: SecretStr | None = None
    confluence_pat: SecretStr | None = None
    confluence_spaces: CsvList = Field(default_factory=list)
    confluence_max_attachment_mb: int = Field(default=20, ge=1)

    google_service_account_file: Path | None = None
    google_oauth_credentials_file: Path | None = None
    google_impersonate: CsvList = Field(default_factory=list)
    google_admin_user: str | None = None
    google_drive_ids: CsvList = Field(default_factory=list)
    google_api_url: str | None = None
    google_max_file_mb: int = Field(default=20, ge=1)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    microsoft_app_id: str | None = None
    microsoft_app_password: SecretStr | None = None
    microsoft_app_tenant_id: str | None = None
    # Other tenants whose activities are answered (their people count as this company's).
    ragbot_teams_tenants: CsvList = Field(default_factory=list)
    # No app id: unauthenticated activities from this machine (the Bot Framework Emulator).
    ragbot_teams_dev: bool = False
    # Where inbound Bot Framework tokens' signing keys are published, and where the bot gets
    # its own tokens; overridden for sovereign clouds and for tests.
    microsoft_openid_metadata_url: str = (
        "https://login.botframework.com/v1/.well-known/openidconfiguration"
    )
    microsoft_login_url: str = "https://login.microsoftonline.com"

    # A killed worker's unacknowledged question returns to the queue after this long. A task
    # still running is never handed out again, however long it takes: its worker keeps its
    # message invisible with heartbeats (workers/heartbeat.py).
    ragbot_task_visibility_seconds: int = Field(default=60, ge=5)
    # Tasks one worker process runs at once, on threads sharing one index handle and one
    # embedding model: answers mostly wait on the chat model, so many fit on two cores.
    ragbot_worker_threads: int = Field(default=32, ge=1, le=256)
    ragbot_sync_interval_seconds: int = Field(default=300, ge=10)
    ragbot_deletion_check_seconds: int = Field(default=3600, ge=60)
    # The knowledge-gaps digest (only where an admin said `gaps weekly on`): weekly.
    ragbot_gaps_digest_seconds: int = Field(default=7 * 86400, ge=3600)
    ragbot_idempotency_ttl_seconds: int = Field(default=3600, ge=900)

    @field_validator(
        "ragbot_org_domains",
        "ragbot_admins",
        "confluence_spaces",
        "google_impersonate",
        "google_drive_ids",
        "ragbot_teams_tenants",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> list[str]:
        return _split_csv(value)

    @field_validator("ragbot_org_domains")
    @classmethod
    def _lower_domains(cls, value: list[str]) -> list[str]:
        return [domain.lower().lstrip("@") for domain in value]

    def secret(self, name: str) -> str | None:
        """The plain value of a secret setting, or None when it is unset."""
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else None

    @property
    def llm_configured(self) -> bool:
        """An LLM answers only when a key is set; otherwise answers are extractive."""
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())

    @property
    def teams_tenants(self) -> frozenset[str]:
        """The Microsoft tenants answered: the app's own plus any listed (lower-case)."""
        tenants = [self.microsoft_app_tenant_id or "", *self.ragbot_teams_tenants]
        return frozenset(t.strip().lower() for t in tenants if t.strip())

    @property
    def parse_limits(self) -> ParseLimits:
        return ParseLimits(
            max_bytes=self.ragbot_max_file_mb * MB,
            max_inflated_bytes=self.ragbot_max_inflated_mb * MB,
            max_entries=self.ragbot_max_archive_entries,
            seconds=self.ragbot_parse_seconds,
            memory_bytes=self.ragbot_parse_memory_mb * MB,
        )

    @property
    def embed_model(self) -> str:
        """The offline local model unless an API embedding model is named and has a server:
        its own (`RAGBOT_EMBED_URL`) or the chat model's (a key set)."""
        if self.ragbot_embed_model and (self.ragbot_embed_url or self.llm_configured):
            return self.ragbot_embed_model
        return "local"
