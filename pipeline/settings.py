"""The settings base every stage's config extends, and one way to report a bad setting.

Shared settings have one name for every stage: CALLSCOPE_KAFKA_BOOTSTRAP, CALLSCOPE_PARTITIONS
and the CALLSCOPE_*_TOPIC names. A stage's own settings are CALLSCOPE_<STAGE>_<FIELD> (its
subclass sets `env_prefix`), the metrics address included, since each process serves its own.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from pipeline.topics import TOPICS, Topics

S = TypeVar("S", bound=BaseSettings)

DEFAULT_PARTITIONS = 8


def shared(name: str, default: Any, **constraints: Any) -> Any:
    """A field read from CALLSCOPE_<NAME> whatever the stage's prefix (or passed by field name)."""
    # One alias only: pydantic-settings reads every alias from the environment, so a second,
    # lower-case one would read the bare old name (KAFKA_BOOTSTRAP, DATABASE_URL) too. Passing the
    # field by name works through populate_by_name.
    return Field(default, validation_alias=f"CALLSCOPE_{name}", **constraints)


class _EnvSource(EnvSettingsSource):
    """A shared field is read from its CALLSCOPE_<NAME> alone: populate_by_name (so code can pass
    `kafka_bootstrap=...`) would also make pydantic-settings read <stage prefix><field name>."""

    def _extract_field_info(
        self, field: FieldInfo, field_name: str, model_config: Any = None
    ) -> list[tuple[str, str, bool]]:
        found = super()._extract_field_info(field, field_name, model_config)
        if not isinstance(field.validation_alias, str):
            return found
        alias = field.validation_alias.lower()
        return [entry for entry in found if entry[1].lower() == alias]


class StageSettings(BaseSettings):
    """Broker address, partition count, topics and the /metrics address, for every stage."""

    # The base's own prefix serves commands that are not a stage (replay, demo, benchmarks).
    model_config = SettingsConfigDict(
        env_prefix="CALLSCOPE_", frozen=True, extra="ignore", populate_by_name=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EnvSource(settings_cls), file_secret_settings

    kafka_bootstrap: str = shared("KAFKA_BOOTSTRAP", "127.0.0.1:9092", min_length=1)
    # Partitions per topic: used when topics are created, and checked where co-partitioning matters.
    partitions: int = shared("PARTITIONS", DEFAULT_PARTITIONS, ge=1, le=1024)
    audio_topic: str = shared("AUDIO_TOPIC", TOPICS.audio, min_length=1)
    transcripts_topic: str = shared("TRANSCRIPTS_TOPIC", TOPICS.transcripts, min_length=1)
    assist_topic: str = shared("ASSIST_TOPIC", TOPICS.assist, min_length=1)
    deadletter_topic: str = shared("DEADLETTER_TOPIC", TOPICS.deadletter, min_length=1)
    # host:port of this process's /metrics ("off": none; port 0: any free port). Loopback unless
    # set; each stage's subclass gives its own default port (ingest 9401 ... store 9404).
    metrics_address: str = "127.0.0.1:0"
    # After SIGTERM the stage finishes what is in flight, flushes and commits within this long;
    # then it is cancelled (what it had not committed is read again by the next owner).
    drain_deadline_s: float = Field(5.0, ge=0, le=600)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _no_scheme(cls, value: str) -> str:
        if "://" in value:
            raise ValueError("give host:port[,host:port], without a scheme")
        return value

    @field_validator("metrics_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value != "off":
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError("give host:port (port 0 = any free port) or off")
        return value

    def topics(self) -> Topics:
        """The four topic names as set (CALLSCOPE_*_TOPIC), for whatever creates, reads or writes them."""
        return Topics(self.audio_topic, self.transcripts_topic, self.assist_topic, self.deadletter_topic)

    def metrics_host_port(self) -> tuple[str, int] | None:
        if self.metrics_address == "off":
            return None
        host, _, port = self.metrics_address.rpartition(":")
        return host.strip("[]"), int(port)


class SettingsError(Exception):
    """A bad setting, as one line naming the variable or field and what is wrong."""


def load_settings(cls: type[S], **values: Any) -> S:
    """Build `cls` from the environment (and `values`); a validation error becomes SettingsError."""
    try:
        return cls(**values)
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problems = "; ".join(_describe(err, prefix) for err in exc.errors())
        raise SettingsError(f"invalid configuration: {problems}") from None


def _describe(err: Any, prefix: str) -> str:
    field = ".".join(str(p) for p in err["loc"])
    if not field:
        return f"settings: {err['msg']}"  # a check across several fields names them in its message
    if field.upper().startswith("CALLSCOPE_") or not prefix:
        name = field.upper() or "settings"  # a shared setting, named by its own variable
    else:
        name = f"{prefix}{field}".upper()
    return f"{name}: {err['msg']}"
