"""The settings base: shared names for every stage, a stage prefix for the rest, one-line errors."""

from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from pipeline.retry import RetryPolicy
from pipeline.settings import SettingsError, StageSettings, load_settings
from pipeline.topics import TOPICS


class DemoSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="CALLSCOPE_DEMOSTAGE_")

    batch_size: int = 10


def test_shared_settings_have_one_name_and_stage_settings_the_stage_prefix(monkeypatch):
    monkeypatch.setenv("CALLSCOPE_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("CALLSCOPE_PARTITIONS", "3")
    monkeypatch.setenv("CALLSCOPE_DEMOSTAGE_BATCH_SIZE", "7")
    monkeypatch.setenv("CALLSCOPE_DEMOSTAGE_METRICS_ADDRESS", "0.0.0.0:9999")
    settings = load_settings(DemoSettings)
    assert (settings.kafka_bootstrap, settings.partitions, settings.batch_size) == ("broker:9092", 3, 7)
    assert settings.metrics_host_port() == ("0.0.0.0", 9999)


def test_metrics_bind_loopback_unless_configured_and_can_be_turned_off():
    assert DemoSettings().metrics_host_port()[0] == "127.0.0.1"
    assert DemoSettings(metrics_address="off").metrics_host_port() is None


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("CALLSCOPE_PARTITIONS", "many", "PARTITIONS"),
        ("CALLSCOPE_KAFKA_BOOTSTRAP", "kafka://x:1", "KAFKA_BOOTSTRAP"),
        ("CALLSCOPE_DEMOSTAGE_METRICS_ADDRESS", "9100", "CALLSCOPE_DEMOSTAGE_METRICS_ADDRESS"),
        ("CALLSCOPE_DEMOSTAGE_BATCH_SIZE", "-", "CALLSCOPE_DEMOSTAGE_BATCH_SIZE"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(monkeypatch, env, value, named):
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(DemoSettings)
    message = str(caught.value)
    assert named in message and "\n" not in message


def test_retry_delays_double_up_to_the_cap_and_attempts_bound_the_retries():
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0, attempts=3)
    assert [policy.delay_s(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.allows(3) and not policy.allows(4)
    assert RetryPolicy(attempts=None).allows(10_000)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=2.0, max_delay_s=1.0)


@pytest.mark.parametrize(
    "old",
    [
        "KAFKA_BOOTSTRAP",
        "CALLSCOPE_DEMOSTAGE_KAFKA_BOOTSTRAP",
        "PARTITIONS",
        "CALLSCOPE_DEMOSTAGE_PARTITIONS",
    ],
)
def test_a_shared_setting_is_read_from_its_one_name_only(monkeypatch, old):
    monkeypatch.setenv(old, "9")
    settings = load_settings(DemoSettings)
    assert (settings.kafka_bootstrap, settings.partitions) == ("127.0.0.1:9092", 8)
    assert (
        load_settings(DemoSettings, kafka_bootstrap="b:1", partitions=2).partitions == 2
    )  # code passes names


def test_commands_that_are_not_a_stage_read_the_base_under_the_callscope_prefix(monkeypatch):
    monkeypatch.setenv("DRAIN_DEADLINE_S", "7")
    monkeypatch.setenv("CALLSCOPE_DRAIN_DEADLINE_S", "3")
    assert load_settings(StageSettings).drain_deadline_s == 3.0


def test_the_topic_names_as_set_are_one_topics_value(monkeypatch):
    monkeypatch.setenv("CALLSCOPE_AUDIO_TOPIC", "site-a.audio")
    monkeypatch.setenv("CALLSCOPE_DEADLETTER_TOPIC", "site-a.dlq")
    topics = load_settings(StageSettings).topics()
    assert topics.all() == ("site-a.audio", TOPICS.transcripts, TOPICS.assist, "site-a.dlq")
