"""Partition intake through its consumer seam (in-memory FakeConsumer): backpressure, commits, revokes.

Driven step by step with fetch() and handle_next(); the one test of run() waits on conditions.
"""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord, TopicPartition

from tests.transcribe.fakes import FakeConsumer, FakeProducer
from transcribe.intake import PartitionIntake

TOPIC = "audio"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


class Handled:
    """The handler: records (partition, offset) of each record; `on_record` may act on the intake."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.on_record = None

    async def __call__(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.seen.append((record.partition, record.offset))
        if self.on_record is not None:
            await self.on_record(record)


def make_intake(consumer: FakeConsumer, handled: Handled, **overrides: int) -> PartitionIntake:
    options = {"high_records": 4, "low_records": 1, "fetch_max_records": 100, "fetch_timeout_ms": 0}
    return PartitionIntake(
        consumer,
        topic=TOPIC,
        handle=handled,
        producer=FakeProducer(consumer.log),
        **{**options, **overrides},
    )


async def handle(intake: PartitionIntake, tp: TopicPartition, count: int) -> None:
    for _ in range(count):
        assert await intake.handle_next(tp)


async def test_a_backlog_at_the_high_water_mark_pauses_its_partition_until_the_low_one() -> None:
    consumer, handled = FakeConsumer(TOPIC), Handled()
    intake = make_intake(consumer, handled)
    consumer.deliver(0, 5)

    assert await intake.fetch() == [P0]
    assert consumer.paused == {P0} and intake.pending(P0) == 5
    consumer.deliver(0, 3)
    assert await intake.fetch() == [] and intake.pending(P0) == 5  # the broker keeps the rest

    await handle(intake, P0, 3)
    assert consumer.paused == {P0}  # two left: above the low-water mark
    await handle(intake, P0, 1)
    assert consumer.paused == set()

    await intake.fetch()
    await handle(intake, P0, 4)
    assert handled.seen == [(0, offset) for offset in range(8)]
    assert not await intake.handle_next(P0)


async def test_a_paused_partition_does_not_hold_back_the_others() -> None:
    consumer, handled = FakeConsumer(TOPIC), Handled()
    intake = make_intake(consumer, handled)
    consumer.deliver(0, 4)
    consumer.deliver(1, 1)

    assert sorted(await intake.fetch()) == [P0, P1]
    consumer.deliver(1, 1)
    await intake.fetch()

    assert consumer.paused == {P0} and intake.pending(P1) == 2


async def test_a_commit_flushes_the_producer_first_and_commits_the_next_offset_to_read() -> None:
    consumer, handled = FakeConsumer(TOPIC), Handled()
    intake = make_intake(consumer, handled)
    consumer.deliver(0, 3)
    await intake.fetch()
    await handle(intake, P0, 3)

    assert await intake.commit()
    assert await intake.commit()  # nothing new: neither flushed nor committed again

    assert consumer.commits == [{P0: 3}]
    assert consumer.log == ["flush", "commit"]


async def test_the_commit_stays_at_the_first_frame_no_final_covers() -> None:
    consumer, handled = FakeConsumer(TOPIC), Handled()
    intake = make_intake(consumer, handled)
    stream = object()

    async def call_starts_at_offset_1(record: ConsumerRecord[bytes, bytes]) -> None:
        if record.offset == 1:
            intake.watermark.frame_fed(stream, record.partition, record.offset, 0, 8_000)

    handled.on_record = call_starts_at_offset_1
    consumer.deliver(0, 4)
    await intake.fetch()
    await handle(intake, P0, 4)

    await intake.commit()
    intake.watermark.final_out(stream, 20)
    await intake.commit()

    assert consumer.commits == [{P0: 1}, {P0: 4}]


async def test_a_refused_commit_is_made_by_the_next_one() -> None:
    consumer, handled = FakeConsumer(TOPIC), Handled()
    intake = make_intake(consumer, handled)
    consumer.deliver(0, 2)
    await intake.fetch()
    await handle(intake, P0, 2)

    consumer.refuse_commits = True
    assert not await intake.commit()
    consumer.refuse_commits = False
    assert await intake.commit()

    assert consumer.commits == [{P0: 2}]


async def test_only_partitions_still_assigned_are_committed() -> None:
    consumer, handled = FakeConsumer(TOPIC), Handled()
    intake = make_intake(consumer, handled)
    consumer.deliver(0, 1)
    consumer.deliver(1, 1)
    await intake.fetch()
    await handle(intake, P0, 1)
    await handle(intake, P1, 1)

    consumer.revoke(1)
    await intake.commit()

    assert consumer.commits == [{P0: 1}]


async def test_a_partition_revoked_and_not_assigned_back_is_committed_then_forgotten() -> None:
    consumer, handled = FakeConsumer(TOPIC), Handled()
    intake = make_intake(consumer, handled)
    consumer.deliver(0, 6)
    await intake.fetch()
    await handle(intake, P0, 2)
    assert consumer.paused == {P0}

    await intake.revoke({P0})
    assert consumer.commits == [{P0: 2}]
    assert intake.pending(P0) == 4  # nothing is dropped before the assignment says what went

    assert intake.assigned(set()) == {P0}
    assert intake.pending(P0) == 0 and not await intake.handle_next(P0)
    assert intake.watermark.to_commit() == {}
    consumer.deliver(0, 1)  # assigned again later (the fake kept it): a fresh backlog
    consumer.resume(P0)
    assert await intake.fetch() == [P0] and intake.pending(P0) == 1


async def test_a_partition_assigned_back_keeps_its_backlog_and_reads_on_from_where_it_fetched() -> None:
    consumer, handled = FakeConsumer(TOPIC), Handled()
    intake = make_intake(consumer, handled)
    consumer.deliver(0, 6)
    await intake.fetch()
    await handle(intake, P0, 2)

    await intake.revoke({P0})
    consumer.paused.clear()  # a real consumer forgets pauses with the old assignment
    assert intake.assigned({P0, P1}) == set()

    assert consumer.seeks == [(P0, 6)]  # not the committed offset: nothing is read twice
    assert consumer.paused == {P0}  # still above its high mark
    assert intake.pending(P0) == 4
    await handle(intake, P0, 4)
    assert [offset for _, offset in handled.seen] == list(range(6))


async def test_run_handles_each_partition_in_order_in_a_task_of_its_own() -> None:
    consumer, handled = FakeConsumer(TOPIC), Handled()
    intake = make_intake(consumer, handled, fetch_timeout_ms=500)
    release, p1_done, all_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def hold_partition_0(record: ConsumerRecord[bytes, bytes]) -> None:
        if record.partition == 0 and record.offset == 0:
            await release.wait()
        if (1, 2) in handled.seen:
            p1_done.set()
        if len(handled.seen) == 6:
            all_done.set()

    handled.on_record = hold_partition_0
    consumer.deliver(0, 3)
    consumer.deliver(1, 3)
    async with asyncio.TaskGroup() as tg:
        fetch = tg.create_task(intake.run(lambda coro, name: tg.create_task(coro, name=name)), name="t-fetch")
        await asyncio.wait_for(p1_done.wait(), 10)  # partition 1 goes on while 0 waits
        assert [seen for seen in handled.seen if seen[0] == 0] == [(0, 0)]
        release.set()
        await asyncio.wait_for(all_done.wait(), 10)
        fetch.cancel()
        intake.stop()

    assert [o for p, o in handled.seen if p == 0] == [0, 1, 2]
    assert [o for p, o in handled.seen if p == 1] == [0, 1, 2]
