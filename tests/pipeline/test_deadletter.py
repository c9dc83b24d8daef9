"""The one dead-letter sink: a letter the broker refuses goes to the spool, then to a log line."""

from __future__ import annotations

import json

from aiokafka.errors import KafkaConnectionError

from pipeline.deadletter import DEAD_LETTERS, DeadLetterSink, DeadLetterSpool, dead_letter


class FailingProducer:
    async def send_and_wait(self, *args, **kwargs):
        raise KafkaConnectionError("broker down")


async def test_dead_letters_the_broker_refuses_go_to_a_bounded_spool_file(tmp_path):
    spool = tmp_path / "dead.jsonl"
    letters = DeadLetterSink.to_topic(
        FailingProducer(), "dl", stage="ingest", timeout_s=1, spool=DeadLetterSpool(spool, max_bytes=700)
    )
    where = [
        await letters.publish(dead_letter(stage="ingest", reason="broker_unavailable", key="c1"))
        for _ in range(5)
    ]
    lines = spool.read_text().splitlines()
    assert where[0] == "spool" and json.loads(lines[0])["reason"] == "broker_unavailable"
    assert where[-1] == "log" and spool.stat().st_size <= 700  # full: logged, never grown


async def test_dead_letters_without_a_spool_are_logged(caplog):
    letters = DeadLetterSink.to_topic(FailingProducer(), "dl", stage="ingest", timeout_s=1)
    assert await letters.publish(dead_letter(stage="ingest", reason="bad_signature")) == "log"
    assert any(r.message == "dead letter not stored" for r in caplog.records)


async def test_every_dead_letter_is_counted_by_stage_reason_and_destination():
    letters = DeadLetterSink.to_topic(FailingProducer(), "dl", stage="store", timeout_s=1)
    before = DEAD_LETTERS.labels("store", "schema_mismatch", "log")._value.get()
    await letters.publish(dead_letter(stage="store", reason="schema_mismatch"))
    assert DEAD_LETTERS.labels("store", "schema_mismatch", "log")._value.get() == before + 1
