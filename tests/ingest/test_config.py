"""The gateway's settings: CALLSCOPE_INGEST_* for its own, the shared names for broker and topics."""

from __future__ import annotations

import os

import pytest

from ingest.config import GatewayConfig
from pipeline.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _no_callscope_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CALLSCOPE_")]:
        monkeypatch.delenv(name)


def test_gateway_reads_its_prefix_and_the_shared_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSCOPE_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("CALLSCOPE_AUDIO_TOPIC", "lab.audio")
    monkeypatch.setenv("CALLSCOPE_INGEST_PORT", "8443")
    monkeypatch.setenv("CALLSCOPE_INGEST_GENERIC_TOKENS", '["t1"]')
    monkeypatch.setenv("CALLSCOPE_INGEST_METRICS_ADDRESS", "0.0.0.0:9501")

    config = load_settings(GatewayConfig)

    assert (config.kafka_bootstrap, config.audio_topic, config.port) == ("kafka:9092", "lab.audio", 8443)
    assert [t.get_secret_value() for t in config.generic_tokens] == ["t1"]
    assert config.metrics_host_port() == ("0.0.0.0", 9501)


def test_gateway_metrics_are_on_loopback_port_9401_unless_configured() -> None:
    assert GatewayConfig().metrics_host_port() == ("127.0.0.1", 9401)
    assert GatewayConfig(metrics_address="off").metrics_host_port() is None


def test_the_old_gateway_names_are_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "old:9092")
    monkeypatch.setenv("CALLSCOPE_GATEWAY_PORT", "9999")

    config = load_settings(GatewayConfig)

    assert (config.kafka_bootstrap, config.port) == ("127.0.0.1:9092", 8080)


def test_a_bad_gateway_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSCOPE_INGEST_MAX_IN_FLIGHT_RECORDS", "0")
    with pytest.raises(SettingsError, match="CALLSCOPE_INGEST_MAX_IN_FLIGHT_RECORDS"):
        load_settings(GatewayConfig)
