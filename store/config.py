"""Settings of the store worker: one frozen object, built once by the process's main()."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.topics import TOPICS


class StoreConfig(BaseSettings):
    """Environment: KAFKA_BOOTSTRAP and DATABASE_URL (shared by all stages), STORE_* for the rest."""

    model_config = SettingsConfigDict(env_prefix="STORE_", frozen=True, populate_by_name=True, extra="ignore")

    kafka_bootstrap: str = Field(validation_alias=AliasChoices("kafka_bootstrap", "KAFKA_BOOTSTRAP"))
    database_url: str = Field(validation_alias=AliasChoices("database_url", "DATABASE_URL"))
    group_id: str = "callscope-store"
    client_id: str = "callscope-store"
    transcripts_topic: str = TOPICS.transcripts
    assist_topic: str = TOPICS.assist
    deadletter_topic: str = TOPICS.deadletter
    migrate_on_start: bool = True
    max_batch_records: int = Field(default=500, ge=1, le=100_000)
    poll_timeout_ms: int = Field(default=200, ge=1, le=60_000)
    session_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000)
    retry_base_delay_s: float = Field(default=0.2, gt=0)
    retry_max_delay_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> StoreConfig:
        if not self.database_url.startswith("postgresql+asyncpg://"):
            raise ValueError("database_url must be a postgresql+asyncpg:// URL")
        if self.retry_max_delay_s < self.retry_base_delay_s:
            raise ValueError("retry_max_delay_s must be at least retry_base_delay_s")
        return self
