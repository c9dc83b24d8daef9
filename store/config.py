"""Settings of the store worker: one frozen object, built once per process (the CLI's load_settings)."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from pipeline.settings import StageSettings, shared


class StoreConfig(StageSettings):
    """`CALLSCOPE_STORE_*` variables, beside the shared broker and topic settings and
    CALLSCOPE_DATABASE_URL (shared with whatever else reads the database)."""

    model_config = SettingsConfigDict(env_prefix="CALLSCOPE_STORE_")

    metrics_address: str = "127.0.0.1:9404"
    database_url: str = shared("DATABASE_URL", ...)
    group_id: str = "callscope-store"
    client_id: str = "callscope-store"
    migrate_on_start: bool = True
    max_batch_records: int = Field(default=500, ge=1, le=100_000)
    poll_timeout_ms: int = Field(default=200, ge=1, le=60_000)
    # How long the broker may hold a fetch that finds nothing new. Tansu never answers one early, so
    # a final arriving mid-wait waits for the rest (aiokafka's 500 ms default: final -> row p50
    # 100 ms, 50 ms: 21 ms measured; shorter costs the broker more fetches).
    fetch_max_wait_ms: int = Field(default=50, ge=1, le=1500)
    # A store that stops without its LeaveGroup reaching the broker (kill, crash; Tansu also keeps a
    # restarted member waiting ~1.7x this) holds its partitions' rows back this long. Shorter
    # rejoins sooner; an event loop blocked longer than this (CPU starvation) costs a rebalance.
    session_timeout_ms: int = Field(default=3_000, ge=1000, le=300_000)
    retry_base_delay_s: float = Field(default=0.2, gt=0)
    retry_max_delay_s: float = Field(default=10.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError("give a postgresql+asyncpg:// URL")
        return value

    @field_validator("retry_max_delay_s")
    @classmethod
    def _cap_above_base(cls, value: float, info: ValidationInfo) -> float:
        if value < info.data.get("retry_base_delay_s", 0):
            raise ValueError("must be at least retry_base_delay_s")
        return value
