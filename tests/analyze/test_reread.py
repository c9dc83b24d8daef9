"""Transcript records faust skips are read again and analysed (analyze.reread), on the real Tansu."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY

from analyze.config import AnalyzeConfig
from analyze.events import AgentHint, AssistEvent, ComplianceState, Sentiment, parse_assist_event
from analyze.reread import NextOffsets, RangeReader
from deploy.runtime import free_port
from pipeline.kafka import create_topics
from pipeline.topics import TOPICS
from tests.analyze.test_worker import (
    PARTITIONS,
    _call,
    _collect_until,
    _committed,
    _produce,
    _running_worker,
    _scrape,
)
from transcribe.events import FinalSegment, segment_id


def test_next_offsets_finds_what_was_skipped_and_never_goes_back() -> None:
    due = NextOffsets()
    assert not due.knows(0) and due.missing(0, 7) == range(0)  # not started: nothing to judge by
    due.start(0, 5)
    assert due.missing(0, 5) == range(0)
    assert due.missing(0, 8) == range(5, 8)  # 5, 6 and 7 never came
    due.seen(0, 8)
    assert due.missing(0, 9) == range(0)
    due.seen(0, 3)  # a rewind delivers an old record again: the next due stays 9
    assert due.missing(0, 12) == range(9, 12)
    assert not due.knows(1)
    due.forget()
    assert not due.knows(0)


async def _commit(bootstrap: str, group_id: str, partition: int, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    tp = TopicPartition(TOPICS.transcripts, partition)
    consumer.assign([tp])  # by hand: the group is not joined
    try:
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()


async def test_range_reader_reads_committed_offsets_and_ranges(
    fresh_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    await create_topics(fresh_bootstrap, PARTITIONS)
    await _produce(fresh_bootstrap, [(1, b"call-r", f"record {i}".encode()) for i in range(10)])
    await _commit(fresh_bootstrap, "group-r", 1, 6)
    reader = RangeReader(fresh_bootstrap, TOPICS.transcripts, "group-r", client_id="test", warn_every_s=0.5)
    await reader.start()
    try:
        assert await reader.committed(1) == 6
        assert await reader.committed(0) == 0  # nothing committed: the earliest offset
        records = await reader.read(1, range(3, 7))
        assert [(r.offset, r.value) for r in records] == [(i, f"record {i}".encode()) for i in range(3, 7)]
        assert await reader.read(1, range(0)) == []
        # 10 and 11 are not written yet: the read waits for them, saying so, and then has them.
        caplog.set_level(logging.ERROR, logger="analyze.reread")
        waiting = asyncio.create_task(reader.read(1, range(8, 12)))
        for _ in range(200):
            if caplog.records or waiting.done():
                break
            await asyncio.sleep(0.05)
        assert [r.getMessage() for r in caplog.records] == [
            "skipped transcript records not read back yet; retrying"
        ]
        assert not waiting.done()
        await _produce(fresh_bootstrap, [(1, b"call-r", f"record {i}".encode()) for i in range(10, 12)])
        records = await asyncio.wait_for(waiting, timeout=30)
        assert [r.offset for r in records] == [8, 9, 10, 11]
    finally:
        await reader.stop()


async def test_worker_analyses_records_the_consumer_skipped(
    fresh_bootstrap: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """faust starts at the committed offset; the previous owner is reported to have stopped at 0.

    So the records before the committed offset are, to the worker, records faust skipped: the
    hint, sentiments and closing of the call's first turns come only if it reads them again.
    """
    await create_topics(fresh_bootstrap, PARTITIONS)
    events = _call("call-skipped", "I want to cancel my account")
    customer_final = next(
        i for i, e in enumerate(events) if isinstance(e, FinalSegment) and e.leg == "customer"
    )
    skipped = customer_final + 1  # call start, the agent's turn and the customer's turn
    end_offsets = await _produce(fresh_bootstrap, [(0, b"call-skipped", e.to_bytes()) for e in events])
    app_id = "callscope-analyze-reread"
    await _commit(fresh_bootstrap, app_id, 0, skipped)

    class PreviousOwnerStoppedAtZero(RangeReader):
        async def committed(self, partition: int) -> int:
            return 0

    monkeypatch.setattr("analyze.worker.RangeReader", PreviousOwnerStoppedAtZero)
    caplog.set_level(logging.WARNING, logger="analyze.app")
    metrics_port = free_port()
    config = AnalyzeConfig(
        kafka_bootstrap=fresh_bootstrap,
        partitions=PARTITIONS,
        app_id=app_id,
        session_timeout_s=6,
        metrics_address=f"127.0.0.1:{metrics_port}",
    )
    finals = {e.segment_id for e in events if isinstance(e, FinalSegment)}

    def complete(seen: list[AssistEvent]) -> bool:
        scored = {e.segment_id for e in seen if isinstance(e, Sentiment) and e.final}
        return scored == finals and any(isinstance(e, ComplianceState) and e.call_ended for e in seen)

    reread_before = REGISTRY.get_sample_value("callscope_analyze_records_reread_total") or 0.0
    async with _running_worker(config):
        assist: list[AssistEvent] = await _collect_until(
            fresh_bootstrap, TOPICS.assist, parse_assist_event, complete
        )
        scraped = await asyncio.to_thread(_scrape, metrics_port)

    hints = [(e.rule_id, e.segment_id) for e in assist if isinstance(e, AgentHint)]
    assert hints == [("retention-cancel", segment_id("call-skipped", "customer", 3000))]
    assert f"callscope_analyze_records_reread_total {reread_before + skipped}" in scraped
    warning = "transcript records skipped by the consumer; read again"
    warned = [r for r in caplog.records if r.getMessage() == warning]
    assert [(r.partition, r.first_offset, r.records) for r in warned] == [(0, 0, skipped)]
    assert (await _committed(fresh_bootstrap, app_id))[0] == end_offsets[0]  # commits went on past them
