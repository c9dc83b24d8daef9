"""A call's language: from call.started metadata (else CALLSCOPE_TRANSCRIBE_LANGUAGE) to the engine.

The worker part runs on the in-memory fakes; the realtime part on the recorded SageMaker stream
fake (the same VllmSession as over a WebSocket) and on `transcribe serve`'s own parser. The
Whisper decode in the language is in test_whisper_engine.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace

import numpy as np
import pytest
from pydantic import ValidationError

from ingest.events import CallStarted, encode_audio_record
from pipeline.settings import SettingsError
from pipeline.topics import TOPICS
from tests.sagemaker_fakes import RealtimeStreamFake
from tests.transcribe.calls import call_records, frames_of
from tests.transcribe.fakes import FakeConsumer, FakeProducer, FakeSessionFactory
from tests.transcribe.test_remote_engine import SAGEMAKER, LoudnessVad, transcribe, two_turns
from transcribe.config import TranscribeConfig
from transcribe.engines import local_session_factory
from transcribe.language import call_language, normalise_language
from transcribe.realtime_protocol import ParsedUpdate, SessionUpdate, encode, parse_client_event
from transcribe.vllm_session import VllmSession
from transcribe.worker import TranscribeWorker


def test_language_tags_become_whispers_codes_and_unknown_ones_none() -> None:
    assert [normalise_language(v) for v in ("es", "es-ES", "ES_mx", " de ", "pt-BR", "zh-Hant-TW")] == [
        "es",
        "es",
        "es",
        "de",
        "pt",
        "zh",
    ]
    assert [normalise_language(v) for v in ("", "xx", "english", "e", "es--", "12")] == [None] * 6


def test_a_calls_language_comes_from_its_metadata_else_the_default(caplog) -> None:
    assert call_language({"language": "de-DE"}) == "de"
    assert call_language({"genesys.language": "es-US"}, "en") == "es"  # Genesys AudioHook
    assert call_language({"custom.language": "fr"}) == "fr"  # Twilio <Parameter name="language">
    assert call_language({"queue": "billing"}, "es") == "es"
    with caplog.at_level(logging.WARNING, logger="transcribe.language"):
        assert call_language({"language": "klingon"}, "en") == "en"
        assert call_language({"language": "klingon"}, "en") == "en"
    assert len([r for r in caplog.records if "unknown call language" in r.getMessage()]) == 1


def test_the_default_language_setting_is_checked_at_start_up(monkeypatch) -> None:
    monkeypatch.setenv("CALLSCOPE_TRANSCRIBE_LANGUAGE", "es-ES")
    assert TranscribeConfig().language == "es"
    with pytest.raises(ValidationError, match="unknown language 'xx'"):
        TranscribeConfig(language="xx")


def test_an_english_only_model_with_a_non_english_default_is_refused_in_one_line() -> None:
    with pytest.raises(
        SettingsError, match="English-only: CALLSCOPE_TRANSCRIBE_LANGUAGE must be 'en'"
    ) as info:
        local_session_factory(TranscribeConfig(language="de"))
    assert "\n" not in str(info.value)


async def test_the_worker_opens_each_leg_in_its_calls_language() -> None:
    consumer = FakeConsumer(TOPICS.audio, partitions=(0,))
    producer = FakeProducer(consumer.log)
    sessions = FakeSessionFactory(turn_ms=200)
    config = TranscribeConfig(metrics_address="off", commit_interval_s=0.05, language="fr")
    worker = TranscribeWorker(config, consumer, producer, sessions)
    values = []
    for call_id, metadata in (("c-es", {"language": "es-MX"}), ("c-default", {})):
        frames = frames_of(call_id, "customer", np.zeros(1_600, dtype=np.int16), sample_rate_hz=8_000)
        started, *rest = call_records(call_id, {"customer": frames})
        started = CallStarted(call_id=call_id, started_at=started.started_at, metadata=metadata)
        values += [encode_audio_record(r) for r in (started, *rest)]
    consumer.deliver(0, values=values)
    stop = asyncio.Event()

    ends = lambda: sum(b'"call.ended"' in v for v in producer.values(TOPICS.transcripts))  # noqa: E731

    serving = asyncio.create_task(worker.serve(stop), name="test-serve")
    await producer.wait_until(lambda: ends() == 2)
    stop.set()
    await asyncio.wait_for(serving, 10)

    assert sessions.languages == {("c-es", "customer"): "es", ("c-default", "customer"): "fr"}


def test_session_update_carries_the_language_both_ways() -> None:
    assert json.loads(encode(SessionUpdate("m"))) == {"type": "session.update", "model": "m"}
    assert json.loads(encode(SessionUpdate("m", "es"))) == {
        "type": "session.update",
        "model": "m",
        "language": "es",
    }

    def parse(frame: str) -> object:
        return parse_client_event(frame, model_validated=False, max_audio_samples=100)

    assert parse('{"type":"session.update","model":"m","language":"de"}') == ParsedUpdate("m", "de")
    assert parse('{"type":"session.update","model":"m","language":7}') == ParsedUpdate("m", None)


async def test_a_realtime_session_tells_the_server_its_calls_language_before_the_first_utterance() -> None:
    opened: list[RealtimeStreamFake] = []
    config = TranscribeConfig(**SAGEMAKER)
    connect = config.realtime_connect(opener=RealtimeStreamFake.opener(opened))
    session_config = replace(config.vllm_session(connect), language="es")  # as the factory opens it

    async with VllmSession(session_config, vad=LoudnessVad()) as session:  # type: ignore[arg-type]
        await transcribe(session, two_turns())

    sent = opened[0].sent
    first_commit = next(i for i, e in enumerate(sent) if e["type"] == "input_audio_buffer.commit")
    updates = [e for e in sent[:first_commit] if e["type"] == "session.update"]
    assert updates[-1] == {"type": "session.update", "model": "tiny-voxtral-rt", "language": "es"}


def test_whisper_base_is_joined_from_its_two_packages_once_into_the_model_cache(tmp_path) -> None:
    from transcribe.models import whisper_base_path

    first = whisper_base_path(tmp_path)
    model = tmp_path / "whisper-base-ct2-float16-1.0.0" / "model.bin"
    written = model.stat().st_mtime_ns
    assert whisper_base_path(tmp_path) == first == str(model.parent)
    assert model.stat().st_mtime_ns == written  # reused, not joined again
    assert sorted(p.name for p in model.parent.iterdir()) == [
        "config.json",
        "model.bin",
        "tokenizer.json",
        "vocabulary.txt",
    ]
    assert [p.name for p in tmp_path.iterdir()] == [model.parent.name]  # no staging folder left
