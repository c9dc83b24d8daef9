"""Transcript records faust skipped are read again: every offset from the committed one is analysed.

faust-streaming 0.15 can skip records around a restart or a rebalance (its read-offset
bookkeeping races with the seek to the committed offsets: a record is logged as "DROPPED
MESSAGE ROFF" and the offsets after it are committed). The agent therefore keeps, per transcript
partition, the next offset it must see (`NextOffsets`): on the first record after an assignment,
the group's committed offset (where the partition's previous owner stopped); after that, the
offset after the last record. A record beyond it means the ones between were skipped: they are
read again from the broker (`RangeReader`, a plain consumer outside the group that never commits)
and analysed before it. A record delivered twice is harmless (deterministic event ids; the call
state ignores a call's records after its end).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

log = logging.getLogger(__name__)

# How often a re-read still waiting for the broker says so.
REREAD_WARN_EVERY_S = 10.0


class NextOffsets:
    """Per partition, the next offset the agent must see; which ones were skipped before a record."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def forget(self) -> None:
        """After a revocation: each partition starts again from its committed offset."""
        self._next.clear()

    def knows(self, partition: int) -> bool:
        return partition in self._next

    def start(self, partition: int, committed: int) -> None:
        """The first offset due on `partition` since its assignment."""
        self._next[partition] = committed

    def missing(self, partition: int, offset: int) -> range:
        """The offsets due before `offset` that were not seen (empty when none, or not started)."""
        due = self._next.get(partition)
        if due is None or offset <= due:
            return range(0)
        return range(due, offset)

    def seen(self, partition: int, offset: int) -> None:
        """`offset` was analysed; an older one delivered again (a rewind) moves nothing back."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)


class RangeReader:
    """Reads the group's committed offsets and ranges of a topic's records, outside the group.

    The consumer carries the group id only to read its committed offsets: it is assigned
    partitions by hand, never subscribes (so it never joins the group) and never commits.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        *,
        client_id: str,
        warn_every_s: float = REREAD_WARN_EVERY_S,
    ) -> None:
        self.topic = topic
        self._warn_every_s = warn_every_s
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def committed(self, partition: int) -> int:
        """Where the group's next owner of `partition` starts: its committed offset, else the earliest."""
        tp = TopicPartition(self.topic, partition)
        offset = await self._consumer.committed(tp)
        if offset is not None and offset >= 0:
            return offset
        return (await self._consumer.beginning_offsets([tp]))[tp]

    async def read(self, partition: int, offsets: range) -> list[ConsumerRecord]:
        """The records of `partition` at `offsets` (holes in the log are skipped), in offset order.

        Waits for the broker as long as it takes (going on without them would lose them), saying
        so every `warn_every_s`; a stop of the worker cancels the wait.
        """
        if not offsets:
            return []
        tp = TopicPartition(self.topic, partition)
        self._consumer.assign([tp])
        self._consumer.seek(tp, offsets.start)
        found: list[ConsumerRecord] = []
        loop = asyncio.get_running_loop()
        warn_at = loop.time() + self._warn_every_s
        try:
            while await self._consumer.position(tp) < offsets.stop:
                batch = await self._consumer.getmany(tp, timeout_ms=200)
                found += [r for r in batch.get(tp, []) if r.offset in offsets]
                if loop.time() >= warn_at:
                    warn_at = loop.time() + self._warn_every_s
                    log.error(
                        "skipped transcript records not read back yet; retrying",
                        extra={"partition": partition, "first_offset": offsets.start, "records": len(found)},
                    )
        finally:
            self._consumer.unsubscribe()  # nothing assigned between re-reads: no fetching meanwhile
        return found
