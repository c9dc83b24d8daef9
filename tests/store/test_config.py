"""Store settings: read from the environment once, validated, frozen."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.settings import SettingsError, load_settings
from store.config import StoreConfig

URL = "postgresql+asyncpg://postgres:@/postgres?host=/tmp/pg"


def test_settings_come_from_shared_and_store_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSCOPE_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("CALLSCOPE_DATABASE_URL", URL)
    monkeypatch.setenv("CALLSCOPE_STORE_GROUP_ID", "store-eu")
    monkeypatch.setenv("CALLSCOPE_STORE_MIGRATE_ON_START", "false")
    monkeypatch.setenv("CALLSCOPE_STORE_METRICS_ADDRESS", "127.0.0.1:9999")
    config = load_settings(StoreConfig)
    assert (config.kafka_bootstrap, config.database_url, config.group_id) == ("kafka:9092", URL, "store-eu")
    assert config.migrate_on_start is False
    assert config.metrics_host_port() == ("127.0.0.1", 9999)
    with pytest.raises(ValidationError):
        config.group_id = "other"  # type: ignore[misc]


def test_explicit_values_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLSCOPE_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("CALLSCOPE_DATABASE_URL", raising=False)
    config = StoreConfig(kafka_bootstrap="127.0.0.1:9092", database_url=URL)
    assert config.transcripts_topic == "callscope.transcripts.v1"
    assert config.metrics_host_port() == ("127.0.0.1", 9404)  # loopback unless configured


def test_a_missing_database_url_is_one_line_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLSCOPE_DATABASE_URL", raising=False)
    with pytest.raises(SettingsError, match="^invalid configuration: CALLSCOPE_DATABASE_URL: Field required"):
        load_settings(StoreConfig)


@pytest.mark.parametrize(
    "fields",
    [
        {"database_url": "postgresql://postgres@/postgres"},  # sync driver: the worker is async
        {"database_url": URL, "max_batch_records": 0},
        {"database_url": URL, "retry_base_delay_s": 5, "retry_max_delay_s": 1},
    ],
)
def test_bad_values_are_refused_at_start(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        StoreConfig(kafka_bootstrap="127.0.0.1:9092", **fields)
