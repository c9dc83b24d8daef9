"""Partition intake: fetched records handled in order per partition, with backpressure and commits.

Each partition gets a backlog of fetched records and one task handing them to the worker one at
a time, in offset order. A backlog at `high_records` pauses its partition at the consumer (the
broker keeps the rest, so memory stays bounded); it resumes once the backlog is down to
`low_records`. What may be committed is the CommitWatermark's call (watermark.py); a commit
flushes the producer first (pipeline.stage.flush_then_commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata

from pipeline.logs import log_context
from pipeline.stage import Flushable, flush_then_commit
from transcribe import metrics
from transcribe.watermark import CommitWatermark

log = logging.getLogger(__name__)

Record = ConsumerRecord[bytes, bytes]
Handle = Callable[[Record], Awaitable[None]]


class Consumer(Protocol):
    """The AIOKafkaConsumer methods the intake uses (an in-memory one: tests/transcribe/fakes.py)."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int | None
    ) -> Mapping[TopicPartition, Sequence[Record]]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None: ...


class _Backlog:
    """Records fetched for one partition and not yet handled."""

    def __init__(self) -> None:
        self.records: deque[Record] = deque()
        self.ready = asyncio.Event()
        self.paused = False
        self.task: asyncio.Task[None] | None = None
        self.handled_ts: int | None = None  # broker timestamp (ms) of the newest record handed on

    def backlog_s(self) -> float:
        """Newest record read minus newest handed on, by broker timestamps; 0 when none waits."""
        if not self.records:
            return 0.0
        since = self.records[0].timestamp if self.handled_ts is None else self.handled_ts
        return max(0, self.records[-1].timestamp - since) / 1000


class PartitionIntake:
    """Feeds `handle` from `consumer`; `run()` fetches, or drive it with fetch() and handle_next()."""

    def __init__(
        self,
        consumer: Consumer,
        *,
        topic: str,
        handle: Handle,
        producer: Flushable | None,
        high_records: int,
        low_records: int,
        fetch_max_records: int,
        fetch_timeout_ms: int = 500,
    ) -> None:
        self.watermark = CommitWatermark()
        self._consumer = consumer
        self._topic = topic
        self._handle = handle
        self._producer = producer
        self._high_records = high_records
        self._low_records = low_records
        self._fetch_max_records = fetch_max_records
        self._fetch_timeout_ms = fetch_timeout_ms
        self._backlogs: dict[TopicPartition, _Backlog] = {}
        self._fetched: dict[TopicPartition, int] = {}  # next offset to fetch, once one was fetched
        self._revoked: set[TopicPartition] = set()  # revoked, not yet known to be kept or lost

    async def run(self, spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]) -> None:
        """Fetch until cancelled; each partition's records are handled in a task made by `spawn`."""
        while True:
            for tp in await self.fetch():
                backlog = self._backlogs[tp]
                backlog.task = spawn(self._serve(tp, backlog), f"transcribe-partition-{tp.partition}")

    async def fetch(self) -> list[TopicPartition]:
        """One fetch into the backlogs; returns the partitions that have a backlog for the first time."""
        batches = await self._consumer.getmany(
            timeout_ms=self._fetch_timeout_ms, max_records=self._fetch_max_records
        )
        new = []
        for tp, records in batches.items():
            backlog = self._backlogs.get(tp)
            if backlog is None:
                backlog = self._backlogs[tp] = _Backlog()
                new.append(tp)
            backlog.records.extend(records)
            if records:
                self._fetched[tp] = records[-1].offset + 1
            backlog.ready.set()
            metrics.PARTITION_BACKLOG_SECONDS.labels(str(tp.partition)).set(backlog.backlog_s())
            if len(backlog.records) >= self._high_records and not backlog.paused:
                self._consumer.pause(tp)
                backlog.paused = True
                metrics.PARTITIONS_PAUSED.inc()
                log.info("partition paused", extra={"partition": tp.partition})
        return new

    def pending(self, tp: TopicPartition) -> int:
        """Records of `tp` fetched and not yet handled."""
        backlog = self._backlogs.get(tp)
        return len(backlog.records) if backlog else 0

    async def handle_next(self, tp: TopicPartition) -> bool:
        """Handle the oldest fetched record of `tp`; False when none is waiting."""
        backlog = self._backlogs.get(tp)
        if backlog is None or not backlog.records:
            return False
        await self._handle_next(tp, backlog)
        return True

    async def _serve(self, tp: TopicPartition, backlog: _Backlog) -> None:
        while True:
            if not backlog.records:
                backlog.ready.clear()
                await backlog.ready.wait()
                continue
            await self._handle_next(tp, backlog)

    async def _handle_next(self, tp: TopicPartition, backlog: _Backlog) -> None:
        record = backlog.records.popleft()
        with log_context(call_id=record.key):  # audio records are keyed by call id
            await self._handle(record)
        self.watermark.consumed(tp.partition, record.offset)
        backlog.handled_ts = record.timestamp
        metrics.PARTITION_BACKLOG_SECONDS.labels(str(tp.partition)).set(backlog.backlog_s())
        if backlog.paused and len(backlog.records) <= self._low_records:
            if tp in self._consumer.assignment():
                self._consumer.resume(tp)
            backlog.paused = False
            metrics.PARTITIONS_PAUSED.dec()
            log.info("partition resumed", extra={"partition": tp.partition})

    async def commit(self) -> bool:
        """Flush the producer, then commit what the watermark allows on the partitions still assigned;
        False when the broker refused the commit (the records are read again, which is safe)."""
        assigned = {tp.partition for tp in self._consumer.assignment()}
        offsets = {p: o for p, o in self.watermark.to_commit().items() if p in assigned}
        if not offsets:
            return True
        positions = {TopicPartition(self._topic, p): o for p, o in offsets.items()}
        if not await flush_then_commit(self._producer, self._consumer, positions):
            return False
        self.watermark.committed(offsets)
        return True

    async def commit_every(self, interval_s: float) -> None:
        """Commit every `interval_s` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await self.commit()

    async def revoke(self, revoked: set[TopicPartition]) -> None:
        """Revocation half of an (eager) rebalance: commit what is safe, keep everything else.

        aiokafka revokes every partition before each rebalance and assigns most of them back: the
        calls of a partition that comes back stay live (see `assigned`); only the lost ones go.
        """
        await self.commit()
        self._revoked |= revoked

    def assigned(self, assigned: set[TopicPartition]) -> set[TopicPartition]:
        """Assignment half: returns the partitions lost (revoked, not assigned back), which stop
        being handled and are forgotten. A partition that came back is read on from where this
        worker had fetched, not from the committed offset (its open calls' turns in flight), and stays
        paused if it was."""
        lost = self._revoked - assigned
        kept = self._revoked & assigned
        self._revoked = set()
        self.forget(lost)
        for tp in kept:
            if tp in self._fetched:
                self._consumer.seek(tp, self._fetched[tp])
            backlog = self._backlogs.get(tp)
            if backlog is not None and backlog.paused:
                self._consumer.pause(tp)
        if kept:
            log.info("partitions kept their calls", extra={"partitions": sorted(tp.partition for tp in kept)})
        return lost

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Stop handling `partitions` and forget their offsets: another worker owns them now."""
        for tp in partitions:
            backlog = self._backlogs.pop(tp, None)
            if backlog and backlog.task:
                backlog.task.cancel()
            if backlog and backlog.paused:
                metrics.PARTITIONS_PAUSED.dec()
            self._fetched.pop(tp, None)
            self.watermark.forget(tp.partition)
            with contextlib.suppress(KeyError):  # another worker reports this partition now
                metrics.PARTITION_BACKLOG_SECONDS.remove(str(tp.partition))

    def stop(self) -> None:
        """Stop handling records (on shutdown: what was not handled is read again by the next owner)."""
        for backlog in self._backlogs.values():
            if backlog.task:
                backlog.task.cancel()


class RebalanceListener(ConsumerRebalanceListener):
    """Hands rebalances to `on_revoked` / `on_assigned` (the worker's, once it exists); logs assignments."""

    def __init__(self) -> None:
        self.on_revoked: Callable[[set[TopicPartition]], Awaitable[None]] | None = None
        self.on_assigned: Callable[[set[TopicPartition]], Awaitable[None]] | None = None
        # An assignment made before on_assigned was set (the group can assign while the worker is
        # still being built): hand it over with take_unseen() once it is.
        self.unseen: set[TopicPartition] | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self.on_revoked is not None:
            await self.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})
        if self.on_assigned is not None:
            await self.on_assigned(assigned)
        else:
            self.unseen = set(assigned)

    def take_unseen(self) -> set[TopicPartition] | None:
        unseen, self.unseen = self.unseen, None
        return unseen
