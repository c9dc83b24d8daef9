"""The store worker against the real Kafka-protocol broker (Tansu) and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from deploy.runtime import free_port
from pipeline.kafka import create_topics, make_producer
from pipeline.topics import Topics
from store.config import StoreConfig
from store.models import AssistEvent, Call, Segment
from store.queries import call_summary
from store.worker import run
from tests import store_events as ev
from tests.postgres import RestartablePostgres

_suffix = itertools.count()


@pytest.fixture
async def config(bootstrap: str, database_url: str) -> StoreConfig:
    """Fresh topics and consumer group per test, on the module's broker and database."""
    n = next(_suffix)
    topics = Topics(
        audio=f"audio-{n}", transcripts=f"transcripts-{n}", assist=f"assist-{n}", deadletter=f"deadletter-{n}"
    )
    await create_topics(bootstrap, partitions=2, topics=topics)
    return StoreConfig(
        kafka_bootstrap=bootstrap,
        database_url=database_url,
        group_id=f"store-{n}",
        transcripts_topic=topics.transcripts,
        assist_topic=topics.assist,
        deadletter_topic=topics.deadletter,
        poll_timeout_ms=100,
        retry_base_delay_s=0.05,
        retry_max_delay_s=0.5,
        session_timeout_ms=6000,  # a cancelled member is dropped sooner (Tansu: no leave at generation 0)
        metrics_address="127.0.0.1:0",  # any free port: workers of several tests never collide
    )


@contextlib.asynccontextmanager
async def worker_running(config: StoreConfig) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(config, stop=stop), name=f"store-worker-{config.group_id}")
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=15)


async def produce(config: StoreConfig, events: Sequence[Any], raw: Sequence[tuple[str, bytes]] = ()) -> None:
    producer = make_producer(config.kafka_bootstrap, client_id="test-producer")
    await producer.start()
    try:
        for event in events:
            topic = (
                config.assist_topic
                if event.type in ("sentiment", "assist.hint", "assist.alert")
                else config.transcripts_topic
            )
            await producer.send(topic, event.to_bytes(), key=event.call_id.encode())
        for topic, value in raw:
            await producer.send(topic, value, key=b"bad-call")
        await producer.flush()
    finally:
        await producer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 40.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.05)


async def counts(engine: AsyncEngine, call_ids: Sequence[str]) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            "calls": await conn.scalar(
                select(func.count()).select_from(Call).where(Call.call_id.in_(call_ids))
            ),
            "segments": await conn.scalar(
                select(func.count())
                .select_from(Segment)
                .where(
                    Segment.call_id.in_(call_ids),
                    Segment.text.is_not(None),
                    Segment.sentiment_compound.is_not(None),
                )
            ),
            "assist_events": await conn.scalar(
                select(func.count()).select_from(AssistEvent).where(AssistEvent.call_id.in_(call_ids))
            ),
        }


def conversation(
    call_id: str, first_ms: int = 0, turns: int = 3, *, start: bool = True, end: bool = True
) -> list[Any]:
    """A call's events on both topics: partials, finals, their sentiment, one hint per customer turn."""
    events: list[Any] = [ev.started(call_id)] if start else []
    for i in range(turns):
        leg = "customer" if i % 2 == 0 else "agent"
        start_ms = first_ms + i * 2000
        events.append(ev.partial(call_id, leg, start_ms, "I would like"))
        final = ev.final(call_id, leg, start_ms, f"turn {i} of {call_id}")
        events += [ev.sentiment(events[-1], 0.0, is_final=False), final, ev.sentiment(final, -0.1 * (i % 5))]
        if leg == "customer":
            events.append(ev.hint(final, "retention", "Offer the loyalty discount"))
    if end:
        events.append(ev.ended(call_id))
    return events


def expected(call_ids: Sequence[str], turns_per_call: int) -> dict[str, int]:
    customer_turns = (turns_per_call + 1) // 2
    return {
        "calls": len(call_ids),
        "segments": len(call_ids) * turns_per_call,
        "assist_events": len(call_ids) * customer_turns,
    }


async def test_events_are_stored_and_a_replay_adds_no_rows(config: StoreConfig, engine: AsyncEngine) -> None:
    call_ids = [f"w-replay-{i}" for i in range(4)]  # spread over both partitions
    events = [e for c in call_ids for e in conversation(c)]
    await produce(config, events)

    async with worker_running(config):
        await eventually(lambda: _equals(counts(engine, call_ids), expected(call_ids, 3)))
        await produce(config, events)  # the same events again, as a replay of the topics would
        await _until_consumed(config, engine, call_ids, marker="w-replay-marker")
        assert await counts(engine, call_ids) == expected(call_ids, 3)

    summary = await call_summary(engine, "w-replay-0")
    assert summary is not None and summary.call is not None and summary.call.end_reason == "hangup"
    assert [s.text for s in summary.segments] == [f"turn {i} of w-replay-0" for i in range(3)]


async def test_worker_restart_mid_call_loses_nothing_and_duplicates_nothing(
    config: StoreConfig, engine: AsyncEngine
) -> None:
    call_ids = [f"w-restart-{i}" for i in range(4)]
    first_half = [e for c in call_ids for e in conversation(c, turns=2, end=False)]
    second_half = [e for c in call_ids for e in conversation(c, first_ms=4000, turns=3, start=False)]

    await produce(config, first_half)
    async with worker_running(config) as task:
        await eventually(lambda: _equals(counts(engine, call_ids), expected(call_ids, 2)))
        # Offsets are committed once the rows are durable: the next worker resumes after them.
        await eventually(lambda: _equals_int(_committed_total(config), len(first_half)))
        task.cancel()  # as abrupt as the process allows: no stop signal, just cancellation
        with contextlib.suppress(asyncio.CancelledError):
            await task

    await produce(config, second_half)
    async with worker_running(config):  # same group: resumes from the committed offsets
        await eventually(
            lambda: _equals(
                counts(engine, call_ids),
                {"calls": 4, "segments": 4 * 5, "assist_events": 4 * (1 + 2)},
            )
        )
    async with engine.connect() as conn:
        ended = await conn.scalar(
            select(func.count())
            .select_from(Call)
            .where(Call.call_id.in_(call_ids), Call.ended_at.is_not(None))
        )
    assert ended == 4


async def test_malformed_record_goes_to_the_deadletter_topic_and_the_rest_is_stored(
    config: StoreConfig, engine: AsyncEngine
) -> None:
    call_ids = ["w-dead-0", "w-dead-1"]
    bad = [
        (config.transcripts_topic, b"{not json"),
        (config.assist_topic, json.dumps({"type": "sentiment"}).encode()),
    ]
    await produce(config, [e for c in call_ids for e in conversation(c)], raw=bad)

    async with worker_running(config):
        await eventually(lambda: _equals(counts(engine, call_ids), expected(call_ids, 3)))
        letters = await _read_deadletters(config, count=2)

    assert sorted((d["reason"], d["source_topic"]) for d in letters) == [
        ("invalid_json", config.transcripts_topic),
        ("schema_mismatch", config.assist_topic),
    ]
    assert all(d["stage"] == "store" and d["source_offset"] is not None for d in letters)


async def test_a_running_store_serves_its_metrics_on_loopback(
    config: StoreConfig, engine: AsyncEngine
) -> None:
    port = free_port()
    config = config.model_copy(update={"metrics_address": f"127.0.0.1:{port}"})
    call_ids = ["w-metrics-0"]
    await produce(config, conversation("w-metrics-0"), raw=[(config.transcripts_topic, b"{not json")])

    async with worker_running(config):
        await eventually(lambda: _equals(counts(engine, call_ids), expected(call_ids, 3)))
        await _read_deadletters(config, count=1)
        scraped = await asyncio.to_thread(_scrape, port)

    for sample in (
        f'callscope_store_records_total{{outcome="accepted",topic="{config.transcripts_topic}"}}',
        f'callscope_store_records_total{{outcome="deadlettered",topic="{config.transcripts_topic}"}}',
        'callscope_store_rows_written_total{kind="segments"}',
        "callscope_store_batch_write_seconds_count",
        "callscope_store_write_retries_total",
        "callscope_store_final_to_row_seconds_count",
        "callscope_store_commit_failures_total",
        'callscope_dead_letters_total{reason="invalid_json",stage="store",where="topic"}',
    ):
        assert sample in scraped, sample


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


async def test_database_outage_holds_commits_and_loses_nothing(config: StoreConfig, caplog) -> None:
    caplog.set_level("INFO", logger="store.worker")
    pg = await asyncio.to_thread(RestartablePostgres)
    engine = create_async_engine(pg.url, poolclass=NullPool)
    config = config.model_copy(update={"database_url": pg.url})
    before_outage = [e for c in ("w-outage-0", "w-outage-1") for e in conversation(c)]
    during_outage = [e for c in ("w-outage-2", "w-outage-3") for e in conversation(c)]
    try:
        async with worker_running(config):
            await produce(config, before_outage)
            await eventually(lambda: _equals_int(_committed_total(config), len(before_outage)))

            retries_before = _retries()
            await asyncio.to_thread(pg.stop)
            await produce(config, during_outage)
            await eventually(lambda: _true(_retries() >= retries_before + 2))
            assert await _committed_total(config) == len(before_outage)  # nothing committed while down

            back_at = time.time()  # the server is asked to start (it is up ~0.2 s later)
            await asyncio.to_thread(pg.start)
            await eventually(
                lambda: _equals_int(_committed_total(config), len(before_outage) + len(during_outage))
            )
        call_ids = [f"w-outage-{i}" for i in range(4)]
        assert await counts(engine, call_ids) == expected(call_ids, 3)
        said = [r for r in caplog.records if r.name == "store.worker" and "database writes" in r.getMessage()]
        # One line when the outage starts, one when it ends (with its length), whatever the retries.
        assert [r.getMessage() for r in said] == [
            "database writes failing; holding the batch",
            "database writes recovered",
        ]
        print(f"database back -> writes recovered: {said[1].created - back_at:.2f} s")
    finally:
        await engine.dispose()
        await asyncio.to_thread(pg.close)


def _retries() -> float:
    return REGISTRY.get_sample_value("callscope_store_write_retries_total") or 0.0


async def _true(value: bool) -> bool:
    return value


async def _equals(actual: Awaitable[dict[str, int]], wanted: dict[str, int]) -> bool:
    return await actual == wanted


async def _until_consumed(
    config: StoreConfig, engine: AsyncEngine, call_ids: Sequence[str], marker: str
) -> None:
    """Wait until the worker has read past everything produced so far: a marker call on every partition."""
    markers = [f"{marker}-{i}" for i in range(8)]  # keys spread over both partitions of both topics
    await produce(config, [e for m in markers for e in conversation(m, turns=1)])
    await eventually(lambda: _equals(counts(engine, markers), expected(markers, 1)))


async def _equals_int(actual: Awaitable[int], wanted: int) -> bool:
    return await actual == wanted


async def _committed_total(config: StoreConfig) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.kafka_bootstrap, group_id=config.group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p) for t in (config.transcripts_topic, config.assist_topic) for p in range(2)
        ]
        return sum([(await consumer.committed(tp)) or 0 for tp in partitions])
    finally:
        await consumer.stop()


async def _read_deadletters(config: StoreConfig, count: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=config.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(config.deadletter_topic, p) for p in range(2)])
        letters: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while len(letters) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                letters += [json.loads(r.value) for r in records]
        return letters
    finally:
        await consumer.stop()


async def test_an_unreachable_broker_is_waited_for_then_one_clear_error(
    config: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import kafka
    from pipeline.kafka import BrokerUnreachable

    monkeypatch.setattr(kafka, "BROKER_WAIT_S", 0.5)
    unreachable = config.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "migrate_on_start": False}
    )
    with pytest.raises(BrokerUnreachable, match="cannot reach the broker"):
        await asyncio.wait_for(run(unreachable, stop=asyncio.Event()), 30)
