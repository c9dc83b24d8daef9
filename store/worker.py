"""Store worker: consume transcript and assist topics, upsert into PostgreSQL, then commit offsets.

At-least-once: a batch's offsets are committed only after its rows (and dead letters) are
durable. If the database is down the batch is retried with backoff, never skipped; a restart
re-reads uncommitted records and the idempotent upserts make that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import Enum
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from analyze.events import parse_assist_event
from pipeline import kafka
from pipeline.contract import InvalidEvent
from pipeline.deadletter import DeadLetter, DeadLetterSink, dead_letter_for
from pipeline.kafka import make_producer, start_client, watch_broker
from pipeline.logs import log_context
from pipeline.metrics import report_consumer_lag
from pipeline.retry import RetryPolicy
from pipeline.stage import flush_then_commit, metrics_server
from store import metrics
from store.batch import Batch, merge
from store.config import StoreConfig
from store.errors import DATABASE_ERRORS, error_code, is_permanent
from store.migrate import migrate
from store.repository import Repository
from store.rows import Row
from store.sink import row_of
from transcribe.events import parse_transcript_event

log = logging.getLogger(__name__)

STAGE = "store"

Records = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
Probe = Callable[[], Awaitable[None]]
# While the database is down, between two write attempts, it is probed this often: the store
# notices it is back within about this long, whatever the retry backoff has grown to.
PROBE_INTERVAL_S = 0.5


class Consumer(Protocol):
    async def getmany(self, *partitions: TopicPartition, timeout_ms: int, max_records: int | None) -> Any: ...

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None: ...


class BatchWriter(Protocol):
    async def write(self, batch: Batch) -> frozenset[str]: ...  # the segment ids stored first


class DeadLetters(Protocol):
    async def publish(self, letter: DeadLetter) -> None: ...


class _Outcome(Enum):
    WRITTEN = "written"
    REJECTED = "rejected"
    STOPPED = "stopped"


class SinkWorker:
    """The consume -> write -> commit loop, over small seams so it can be driven by fakes."""

    def __init__(
        self,
        consumer: Consumer,
        writer: BatchWriter,
        deadletters: DeadLetters,
        *,
        transcripts_topic: str,
        assist_topic: str,
        retry: RetryPolicy,
        stop: asyncio.Event,
        max_batch_records: int = 500,
        poll_timeout_ms: int = 200,
        probe: Probe | None = None,
        probe_interval_s: float = PROBE_INTERVAL_S,
    ) -> None:
        self._consumer = consumer
        self._writer = writer
        self._deadletters = deadletters
        self._parsers: dict[str, Callable[[bytes | None], Any]] = {
            transcripts_topic: parse_transcript_event,
            assist_topic: parse_assist_event,
        }
        self._retry = retry
        self._stop = stop
        self._max_batch_records = max_batch_records
        self._poll_timeout_ms = poll_timeout_ms
        self._last_error = ""  # code of the latest write error, for the dead letter of a refused record
        self._probe = probe
        self._probe_interval_s = probe_interval_s
        self._outage_since: float | None = None  # monotonic time of the first failed write of an outage

    async def run(self) -> None:
        while not self._stop.is_set():
            records = await self._consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._max_batch_records
            )
            if records and not await self.process(records):
                return

    async def process(self, records: Records) -> bool:
        """Store one consumed batch and commit it; False if stopped before it was durable."""
        accepted: list[tuple[ConsumerRecord[bytes, bytes], Row]] = []
        for messages in records.values():
            for record in messages:
                row = await self._accept(record)
                if row is not None:
                    accepted.append((record, row))
        if not await self._write_all(accepted):
            log.info("store stopped before the batch was written; offsets left uncommitted")
            return False
        await self._commit(records)
        return True

    async def _accept(self, record: ConsumerRecord[bytes, bytes]) -> Row | None:
        with log_context(call_id=record.key):  # records are keyed by call id
            try:
                row = row_of(self._parsers[record.topic](record.value))
            except InvalidEvent as exc:
                await self._dead_letter(record, exc.reason, exc.detail)
                return None
        metrics.RECORDS.labels(record.topic, "ignored" if row is None else "accepted").inc()
        if row is not None and metrics.ENDED_CALLS.after_end(row):
            metrics.RECORDS_AFTER_CALL_END.inc()  # stored all the same
        return row

    async def _write_all(self, accepted: list[tuple[ConsumerRecord[bytes, bytes], Row]]) -> bool:
        outcome = await self._write(merge(row for _, row in accepted))
        if outcome is not _Outcome.REJECTED:
            return outcome is _Outcome.WRITTEN
        # The database refuses something in this batch outright: write record by record so only
        # the refused record goes to the dead-letter topic. Order is kept, so latest still wins.
        for record, row in accepted:
            outcome = await self._write(merge([row]))
            if outcome is _Outcome.STOPPED:
                return False
            if outcome is _Outcome.REJECTED:
                await self._dead_letter(record, "rejected_by_database", self._last_error)
        return True

    async def _write(self, batch: Batch) -> _Outcome:
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                first_texts = await self._writer.write(batch)
            except DATABASE_ERRORS as exc:
                self._last_error = error_code(exc)
                if is_permanent(exc):
                    log.warning("database refused a batch", extra={"error": self._last_error})
                    return _Outcome.REJECTED
                attempt += 1
                delay_s = self._retry.delay_s(attempt)
                metrics.WRITE_RETRIES.inc()
                if self._outage_since is None:  # one line when the outage starts, one when it ends
                    self._outage_since = time.monotonic()
                    log.warning(
                        "database writes failing; holding the batch", extra={"error": self._last_error}
                    )
                else:
                    log.debug(
                        "database write failed again", extra={"error": self._last_error, "attempt": attempt}
                    )
                if await self._wait_for_retry(delay_s):
                    return _Outcome.STOPPED
                continue
            metrics.BATCH_WRITE_SECONDS.observe(time.perf_counter() - started)
            if self._outage_since is not None:
                outage_s = round(time.monotonic() - self._outage_since, 2)
                log.info("database writes recovered", extra={"outage_s": outage_s, "retries": attempt})
                self._outage_since = None
            self._observe_written(batch, first_texts)
            return _Outcome.WRITTEN

    async def _wait_for_retry(self, delay_s: float) -> bool:
        """Wait up to `delay_s` before the next write, less once a probe finds the database back;
        True when stopped meanwhile."""
        deadline = time.monotonic() + delay_s
        while (left := deadline - time.monotonic()) > 0:
            if await _stopped_within(self._stop, min(left, self._probe_interval_s)):
                return True
            if self._probe is not None and time.monotonic() < deadline:
                try:
                    await self._probe()
                    return False
                except DATABASE_ERRORS:
                    pass
        return self._stop.is_set()

    def _observe_written(self, batch: Batch, first_texts: frozenset[str]) -> None:
        for kind, rows in batch.tables().items():
            if rows:
                metrics.ROWS_WRITTEN.labels(kind).inc(len(rows))
        now = time.time()
        for segment in batch.segments:  # first writes only: a re-sent or re-read final is no latency
            if segment.segment_id in first_texts:
                metrics.FINAL_TO_ROW_SECONDS.observe(max(0.0, now - segment.emitted_at.timestamp()))
            else:
                metrics.SEGMENTS_RESENT.inc()

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str) -> None:
        metrics.RECORDS.labels(record.topic, "deadlettered").inc()
        await self._deadletters.publish(dead_letter_for(record, stage=STAGE, reason=reason, detail=detail))

    async def _commit(self, records: Records) -> None:
        offsets = {tp: messages[-1].offset + 1 for tp, messages in records.items() if messages}
        # Rows and dead letters (sent and awaited one by one) are durable already: nothing to flush.
        if not await flush_then_commit(None, self._consumer, offsets):
            # Whoever owns these partitions next re-reads and rewrites the rows (idempotent upserts).
            metrics.COMMIT_FAILURES.inc()


async def _stopped_within(stop: asyncio.Event, delay_s: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay_s)
    return stop.is_set()


async def _select_one(engine: AsyncEngine) -> None:
    async with asyncio.timeout(PROBE_INTERVAL_S * 2), engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _migrate_when_reachable(config: StoreConfig, retry: RetryPolicy, stop: asyncio.Event) -> bool:
    attempt = 0
    while True:
        try:
            await migrate(config.database_url)
            return True
        except DATABASE_ERRORS as exc:
            attempt += 1
            delay_s = retry.delay_s(attempt)
            log.warning(
                "database migration failed; retrying",
                extra={"error": error_code(exc), "attempt": attempt, "delay_s": delay_s},
            )
            if await _stopped_within(stop, delay_s):
                return False


async def run(config: StoreConfig, *, stop: asyncio.Event) -> None:
    """Run the store worker until `stop` is set or the task is cancelled, serving its /metrics."""
    with metrics_server(config.metrics_host_port(), stage=STAGE):
        await _serve(config, stop)


async def _serve(config: StoreConfig, stop: asyncio.Event) -> None:
    retry = RetryPolicy(base_delay_s=config.retry_base_delay_s, max_delay_s=config.retry_max_delay_s)
    if config.migrate_on_start and not await _migrate_when_reachable(config, retry, stop):
        return

    def new_consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            config.transcripts_topic,
            config.assist_topic,
            bootstrap_servers=config.kafka_bootstrap,
            group_id=config.group_id,
            client_id=config.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=config.session_timeout_ms,
            heartbeat_interval_ms=max(100, config.session_timeout_ms // 3),
            fetch_max_wait_ms=config.fetch_max_wait_ms,
        )

    bootstrap = config.kafka_bootstrap
    engine = create_async_engine(config.database_url, pool_pre_ping=True)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        # An unreachable broker is waited for, then one line (BrokerUnreachable), not a traceback.
        producer = await start_client(
            lambda: make_producer(bootstrap, client_id=f"{config.client_id}-deadletter"),
            bootstrap=bootstrap,
            what="producer",
            wait_s=kafka.BROKER_WAIT_S,
        )
        stack.push_async_callback(producer.stop)
        consumer = await start_client(
            new_consumer, bootstrap=bootstrap, what="consumer", wait_s=kafka.BROKER_WAIT_S
        )
        stack.push_async_callback(consumer.stop)
        log.info(
            "store worker started",
            extra={"group_id": config.group_id, "topics": [config.transcripts_topic, config.assist_topic]},
        )
        worker = SinkWorker(
            consumer,
            Repository(engine),
            DeadLetterSink.to_topic(producer, config.deadletter_topic, stage=STAGE),
            transcripts_topic=config.transcripts_topic,
            assist_topic=config.assist_topic,
            retry=retry,
            stop=stop,
            max_batch_records=config.max_batch_records,
            poll_timeout_ms=config.poll_timeout_ms,
            probe=functools.partial(_select_one, engine),
        )
        watching = asyncio.create_task(watch_broker(consumer.topics, stage=STAGE), name="store-broker")
        lag = asyncio.create_task(report_consumer_lag(consumer, metrics.CONSUMER_LAG), name="store-lag")
        try:
            await worker.run()
        finally:
            watching.cancel()
            lag.cancel()
    log.info("store worker stopped")
