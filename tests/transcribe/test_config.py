"""The worker's settings: CALLSCOPE_TRANSCRIBE_* for its own, the shared CALLSCOPE_* for the rest."""

from __future__ import annotations

import pytest

from pipeline.settings import SettingsError, load_settings
from transcribe.config import TranscribeConfig


def test_broker_and_topics_are_the_shared_settings_and_metrics_stay_on_loopback(monkeypatch) -> None:
    monkeypatch.setenv("CALLSCOPE_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("CALLSCOPE_TRANSCRIPTS_TOPIC", "t.v1")
    monkeypatch.setenv("CALLSCOPE_TRANSCRIBE_CPU_THREADS", "4")

    config = load_settings(TranscribeConfig)

    assert (config.kafka_bootstrap, config.transcripts_topic, config.cpu_threads) == ("kafka:9092", "t.v1", 4)
    assert config.metrics_host_port() == ("127.0.0.1", 9402)
    assert config.drain_deadline_s == 5.0


def test_metrics_address_and_drain_deadline_are_read_under_the_stage_prefix(monkeypatch) -> None:
    monkeypatch.setenv("CALLSCOPE_TRANSCRIBE_METRICS_ADDRESS", "off")
    monkeypatch.setenv("CALLSCOPE_TRANSCRIBE_DRAIN_DEADLINE_S", "12")

    config = load_settings(TranscribeConfig)

    assert config.metrics_host_port() is None and config.drain_deadline_s == 12


def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("CALLSCOPE_TRANSCRIBE_MAX_SILENCE_MS", "5")

    with pytest.raises(SettingsError, match="CALLSCOPE_TRANSCRIBE_MAX_SILENCE_MS"):
        load_settings(TranscribeConfig)


def test_retry_delays_that_would_shrink_are_refused() -> None:
    with pytest.raises(SettingsError, match="VLLM_RETRY_MAX_DELAY_S"):
        load_settings(TranscribeConfig, vllm_retry_base_delay_s=10.0, vllm_retry_max_delay_s=8.0)


def test_turn_cuts_and_the_first_partial_are_settings(monkeypatch) -> None:
    monkeypatch.setenv("CALLSCOPE_TRANSCRIBE_FIRST_PARTIAL_MS", "400")
    monkeypatch.setenv("CALLSCOPE_TRANSCRIBE_CUT_SEARCH_MS", "2000")
    monkeypatch.setenv("CALLSCOPE_TRANSCRIBE_CUT_OVERLAP_MS", "0")

    session = load_settings(TranscribeConfig).local_session()

    assert session.first_partial_ms == 400
    assert (session.segmenter.cut_search_ms, session.segmenter.cut_overlap_ms) == (2_000, 0)
