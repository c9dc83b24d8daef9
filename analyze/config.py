"""Settings of the analysis worker: one frozen object, read from the environment only by main()."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.topics import TOPICS


class AnalyzeConfig(BaseSettings):
    """`ANALYZE_*` variables; the broker address and partition count are shared with other stages."""

    model_config = SettingsConfigDict(env_prefix="ANALYZE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092",
        min_length=1,
        validation_alias=AliasChoices("ANALYZE_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP", "kafka_bootstrap"),
    )
    # Must equal the transcript topic's partition count: faust crashes the agent on a mismatch.
    partitions: int = Field(
        default=8,
        ge=1,
        le=1024,
        validation_alias=AliasChoices("ANALYZE_PARTITIONS", "KAFKA_PARTITIONS", "partitions"),
    )
    transcripts_topic: str = TOPICS.transcripts
    assist_topic: str = TOPICS.assist
    deadletter_topic: str = TOPICS.deadletter
    app_id: str = Field(default="callscope-analyze", min_length=1)  # also the consumer group id
    rules_path: Path | None = None  # None: the example rules shipped in the package
    datadir: Path | None = None  # None: a temporary folder removed when the worker stops
    # Tansu answers the first JoinGroup only after about half the session timeout; faust's 60 s
    # default would delay the first assignment by ~30 s.
    session_timeout_s: float = Field(default=10.0, ge=6, le=300)
    commit_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_calls: int = Field(default=20_000, ge=1)  # per worker; the oldest open call is forgotten first
    stream_buffer_maxsize: int = Field(default=4096, ge=1)  # per partition, then faust pauses it
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # None: no /metrics server
    metrics_host: str = "127.0.0.1"

    @field_validator("kafka_bootstrap")
    @classmethod
    def _no_scheme(cls, value: str) -> str:
        if "://" in value:
            raise ValueError("give host:port[,host:port], without a scheme")
        return value
