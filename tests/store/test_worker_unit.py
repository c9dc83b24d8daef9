"""The store's consume -> write -> commit loop, driven through its seams with in-memory fakes."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata
from sqlalchemy import exc as sa_exc

from pipeline.deadletter import DeadLetter
from pipeline.retry import RetryPolicy
from store.batch import Batch
from store.worker import SinkWorker
from tests import store_events as ev

TRANSCRIPTS = "t"
ASSIST = "a"
NO_WAIT = RetryPolicy(base_delay_s=0.0, max_delay_s=0.0)


def record(topic: str, offset: int, value: bytes | None, partition: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"call",
        value=value,
        checksum=None,
        serialized_key_size=4,
        serialized_value_size=len(value or b""),
        headers=(),
    )


def batch_of(
    *records: ConsumerRecord[bytes, bytes],
) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    out: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
    for r in records:
        out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
    return out


class FakeConsumer:
    def __init__(self, commit_error: Exception | None = None) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self._commit_error = commit_error

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int, max_records: int | None) -> Any:
        return {}

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self._commit_error is not None:
            raise self._commit_error
        self.commits.append({tp: committed.offset for tp, committed in offsets.items()})


class FakeWriter:
    """Fails the first `outages` writes as a database that is down; refuses batches holding `poison`."""

    def __init__(self, outages: int = 0, poison: str | None = None, on_failure: Any = None) -> None:
        self.batches: list[Batch] = []
        self.attempts = 0
        self._outages = outages
        self._poison = poison
        self._on_failure = on_failure

    async def write(self, batch: Batch) -> frozenset[str]:
        self.attempts += 1
        if self.attempts <= self._outages:
            if self._on_failure:
                self._on_failure()
            raise sa_exc.OperationalError("INSERT", {}, ConnectionRefusedError())
        if self._poison and any(s.text == self._poison for s in batch.segments):
            raise sa_exc.DataError("INSERT", {}, ValueError("refused"))
        self.batches.append(batch)
        return frozenset(segment.segment_id for segment in batch.segments)


class FakeDeadLetters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def publish(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


def make_worker(writer: FakeWriter, consumer: FakeConsumer | None = None, stop: asyncio.Event | None = None):
    consumer = consumer or FakeConsumer()
    deadletters = FakeDeadLetters()
    worker = SinkWorker(
        consumer,
        writer,
        deadletters,
        transcripts_topic=TRANSCRIPTS,
        assist_topic=ASSIST,
        retry=NO_WAIT,
        stop=stop or asyncio.Event(),
    )
    return worker, consumer, deadletters


async def test_batch_is_committed_only_after_a_database_outage_ends() -> None:
    seg = ev.final("c1", "customer", 0, "hello")
    records = batch_of(
        record(TRANSCRIPTS, 10, ev.started("c1").to_bytes()),
        record(TRANSCRIPTS, 11, seg.to_bytes()),
        record(ASSIST, 4, ev.sentiment(seg, 0.1).to_bytes()),
    )
    consumer = FakeConsumer()
    writer = FakeWriter(outages=3, on_failure=lambda: commits_during_outage.append(len(consumer.commits)))
    commits_during_outage: list[int] = []
    worker, _, _ = make_worker(writer, consumer)

    assert await worker.process(records) is True
    assert commits_during_outage == [0, 0, 0]
    assert writer.attempts == 4 and len(writer.batches) == 1
    assert consumer.commits == [{TopicPartition(TRANSCRIPTS, 0): 12, TopicPartition(ASSIST, 0): 5}]


async def test_stop_during_a_database_outage_leaves_offsets_uncommitted() -> None:
    stop = asyncio.Event()
    writer = FakeWriter(outages=10**9, on_failure=lambda: writer.attempts >= 5 and stop.set())
    worker, consumer, _ = make_worker(writer, stop=stop)

    stored = await worker.process(batch_of(record(TRANSCRIPTS, 0, ev.started("c1").to_bytes())))

    assert stored is False and consumer.commits == [] and writer.batches == []


async def test_malformed_record_is_dead_lettered_and_the_rest_stored() -> None:
    writer = FakeWriter()
    worker, consumer, deadletters = make_worker(writer)
    records = batch_of(
        record(TRANSCRIPTS, 0, ev.started("c1").to_bytes(), partition=1),
        record(TRANSCRIPTS, 1, b"{not json", partition=1),
        record(TRANSCRIPTS, 2, ev.final("c1", "agent", 0, "hi").to_bytes(), partition=1),
    )

    await worker.process(records)

    [letter] = deadletters.letters
    assert (letter.stage, letter.reason) == ("store", "invalid_json")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (TRANSCRIPTS, 1, 1)
    assert [b.row_count() for b in writer.batches] == [2]
    assert consumer.commits == [{TopicPartition(TRANSCRIPTS, 1): 3}]


async def test_record_the_database_refuses_is_dead_lettered_and_the_rest_stored() -> None:
    writer = FakeWriter(poison="refused text")
    worker, consumer, deadletters = make_worker(writer)
    records = batch_of(
        record(TRANSCRIPTS, 0, ev.final("c1", "agent", 0, "fine").to_bytes()),
        record(TRANSCRIPTS, 1, ev.final("c1", "agent", 2000, "refused text").to_bytes()),
        record(TRANSCRIPTS, 2, ev.final("c1", "agent", 4000, "also fine").to_bytes()),
    )

    await worker.process(records)

    assert [(d.reason, d.source_offset) for d in deadletters.letters] == [("rejected_by_database", 1)]
    assert sorted(s.text for b in writer.batches for s in b.segments) == ["also fine", "fine"]
    assert consumer.commits == [{TopicPartition(TRANSCRIPTS, 0): 3}]


async def test_partials_are_consumed_and_committed_without_a_write() -> None:
    writer = FakeWriter()
    worker, consumer, _ = make_worker(writer)
    await worker.process(batch_of(record(TRANSCRIPTS, 7, ev.partial("c1", "agent", 0, "hel").to_bytes())))
    assert writer.attempts == 1 and writer.batches[0].row_count() == 0
    assert consumer.commits == [{TopicPartition(TRANSCRIPTS, 0): 8}]


async def test_commit_failure_after_the_write_does_not_stop_the_worker() -> None:
    writer = FakeWriter()
    worker, _, _ = make_worker(writer, FakeConsumer(commit_error=CommitFailedError("rebalanced")))
    assert await worker.process(batch_of(record(TRANSCRIPTS, 0, ev.started("c1").to_bytes()))) is True
    assert len(writer.batches) == 1


async def test_a_probe_notices_the_database_back_before_the_backoff_ends_and_says_so(caplog) -> None:
    writer = FakeWriter(outages=3)
    probes: list[int] = []

    async def probe() -> None:  # down for the first probe, back from the second
        probes.append(writer.attempts)
        if len(probes) < 2:
            raise sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError())

    consumer = FakeConsumer()
    worker = SinkWorker(
        consumer,
        writer,
        FakeDeadLetters(),
        transcripts_topic=TRANSCRIPTS,
        assist_topic=ASSIST,
        retry=RetryPolicy(base_delay_s=600.0, max_delay_s=600.0),  # only a probe can end the wait
        stop=asyncio.Event(),
        probe=probe,
        probe_interval_s=0.001,
    )
    caplog.set_level("DEBUG", logger="store.worker")

    stored = await asyncio.wait_for(
        worker.process(batch_of(record(TRANSCRIPTS, 0, ev.started("c1").to_bytes()))), 30
    )

    assert stored and writer.attempts == 4 and len(consumer.commits) == 1
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelname != "DEBUG"]
    assert said == [
        ("WARNING", "database writes failing; holding the batch"),
        ("INFO", "database writes recovered"),
    ]
    (recovered,) = [r for r in caplog.records if r.getMessage() == "database writes recovered"]
    assert recovered.retries == 3 and recovered.outage_s >= 0
