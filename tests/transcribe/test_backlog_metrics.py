"""The transcriber's capacity metrics without a broker: partition and leg backlog, the configured
limit, records after a call's end (in-memory consumer, producer and sessions: fakes.py)."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
from prometheus_client import REGISTRY

from ingest.events import encode_audio_record
from pipeline.topics import TOPICS
from tests.transcribe.calls import call_records, frames_of
from tests.transcribe.fakes import FakeConsumer, FakeProducer, FakeSessionFactory
from transcribe import metrics
from transcribe.config import TranscribeConfig
from transcribe.intake import PartitionIntake
from transcribe.worker import TranscribeWorker


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_partition_backlog_is_newest_read_minus_newest_handed_on_and_goes_with_the_partition() -> None:
    consumer = FakeConsumer(TOPICS.audio, partitions=(7,))
    handled: list[int] = []

    async def handle(record) -> None:
        handled.append(record.offset)

    intake = PartitionIntake(
        consumer,
        topic=TOPICS.audio,
        handle=handle,
        producer=None,
        high_records=100,
        low_records=10,
        fetch_max_records=100,
        fetch_timeout_ms=0,
    )
    consumer.deliver(7, 3)
    (tp,) = consumer.assigned
    consumer._waiting[tp] = type(consumer._waiting[tp])(  # broker timestamps 1 s, 2 s, 4 s
        dataclasses.replace(r, timestamp=ms)
        for r, ms in zip(consumer._waiting[tp], (1000, 2000, 4000), strict=True)
    )
    name = "callscope_transcribe_partition_backlog_seconds"
    await intake.fetch()
    assert _value(name, partition="7") == 3.0  # nothing handed on yet: the whole span waits
    await intake.handle_next(tp)
    assert _value(name, partition="7") == 3.0  # newest read (4 s) - newest handed on (1 s)
    await intake.handle_next(tp)
    assert _value(name, partition="7") == 2.0
    await intake.handle_next(tp)
    assert _value(name, partition="7") == 0.0 and handled == [0, 1, 2]
    intake.forget({tp})
    assert _value(name, partition="7") is None  # another worker reports it now


def test_leg_backlog_is_the_worst_open_leg_of_each_role_and_forgets_ended_legs_and_calls() -> None:
    now = [1000.0]
    feed = metrics.LegFeed(clock=lambda: now[0])

    @dataclasses.dataclass
    class Stream:
        ended: bool = False

    a, b, c = Stream(), Stream(), Stream()
    feed.fed("c1", "customer", 999.9, a)
    feed.fed("c2", "customer", 996.0, b)  # this leg is 4 s behind live
    feed.fed("c1", "agent", 999.5, c)
    assert feed.behind_s("customer") == 4.0 and feed.behind_s("agent") == 0.5
    b.ended = True  # retired (idle): no longer read as behind
    assert round(feed.behind_s("customer"), 3) == 0.1
    feed.forget("c1")
    assert feed.behind_s("customer") == 0.0 and feed.behind_s("agent") == 0.0


async def test_the_worker_exports_its_limit_and_counts_records_after_a_calls_end_keeping_them() -> None:
    consumer = FakeConsumer(TOPICS.audio, partitions=(0,))
    producer = FakeProducer(consumer.log)
    config = TranscribeConfig(metrics_address="off", commit_interval_s=0.05, max_live_calls=7)
    worker = TranscribeWorker(config, consumer, producer, FakeSessionFactory(turn_ms=200))
    assert _value("callscope_transcribe_max_live_calls") == 7

    frames = frames_of("late-1", "customer", np.zeros(8_000, dtype=np.int16), sample_rate_hz=8_000)
    records = [encode_audio_record(r) for r in call_records("late-1", {"customer": frames})]
    after_end = "callscope_transcribe_records_after_call_end_total"
    before = _value(after_end) or 0.0
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop), name="test-serve")
    consumer.deliver(0, values=records)
    consumer.deliver(0, values=[records[1], records[-1]])  # a frame and a second call.ended, late
    await producer.wait_until(lambda: len(producer.values(TOPICS.deadletter)) == 2)
    stop.set()
    await asyncio.wait_for(serving, 10)

    assert _value(after_end) == before + 2
    letters = producer.values(TOPICS.deadletter)
    assert all(b"call_already_ended" in letter for letter in letters)  # kept, with the reason
