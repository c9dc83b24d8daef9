"""The worker's wiring without a broker: in-memory consumer, producer and sessions (fakes.py).

The real broker and model run in test_worker.py; here the order of events, the commits and what
a revoke does are checked in a second.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from aiokafka import TopicPartition

from ingest.events import encode_audio_record
from pipeline.topics import TOPICS
from tests.transcribe.calls import call_records, frames_of
from tests.transcribe.fakes import FakeConsumer, FakeProducer, FakeSessionFactory
from transcribe import metrics
from transcribe.config import TranscribeConfig
from transcribe.events import FinalSegment, TranscriptCallStarted, parse_transcript_event
from transcribe.resume import OpenCall, ReadBack
from transcribe.worker import TranscribeWorker

P0 = TopicPartition(TOPICS.audio, 0)


def one_second_call(call_id: str) -> list[bytes]:
    """call.started, 1 s of customer audio in 20 ms mu-law frames, call.ended."""
    frames = frames_of(call_id, "customer", np.zeros(8_000, dtype=np.int16), sample_rate_hz=8_000)
    return [encode_audio_record(r) for r in call_records(call_id, {"customer": frames})]


class Running:
    def __init__(self) -> None:
        self.consumer = FakeConsumer(TOPICS.audio, partitions=(0,))
        self.producer = FakeProducer(self.consumer.log)
        self.sessions = FakeSessionFactory(turn_ms=200)
        config = TranscribeConfig(metrics_address="off", commit_interval_s=0.05)
        self.worker = TranscribeWorker(config, self.consumer, self.producer, self.sessions)
        self.stop = asyncio.Event()

    def transcripts(self) -> list:
        return [parse_transcript_event(v) for v in self.producer.values(TOPICS.transcripts)]

    def types(self) -> list[str]:
        return [e.type for e in self.transcripts()]


async def test_a_call_is_transcribed_in_order_and_committed_past_its_end() -> None:
    running = Running()
    records = one_second_call("c1")
    running.consumer.deliver(0, values=records)

    serving = asyncio.create_task(running.worker.serve(running.stop), name="test-serve")
    await running.producer.wait_until(lambda: "call.ended" in running.types())
    running.stop.set()
    await asyncio.wait_for(serving, 10)

    types = running.types()
    assert types[0] == "call.started" and types[-1] == "call.ended"
    finals = [e for e in running.transcripts() if isinstance(e, FinalSegment)]
    assert [(f.start_ms, f.end_ms) for f in finals] == [(s, s + 200) for s in range(0, 1_000, 200)]
    assert running.consumer.commits[-1] == {P0: len(records)}
    assert running.consumer.log[-2:] == ["flush", "commit"]


async def test_a_revoked_partitions_open_call_is_dropped_and_committed_no_further_than_its_start() -> None:
    running = Running()
    records = one_second_call("c1")[:-1]  # still open: no call.ended
    running.consumer.deliver(0, values=records)

    serving = asyncio.create_task(running.worker.serve(running.stop), name="test-serve")
    await running.producer.wait_until(lambda: running.types().count("segment.final") == 5)
    await running.worker.partitions_revoked({P0})
    await running.worker.partitions_assigned(set())
    running.stop.set()
    await asyncio.wait_for(serving, 10)

    assert running.consumer.commits == [{P0: 0}]  # the next owner reads the call from its start
    assert "call.ended" not in running.types()
    (session,) = running.sessions.sessions[("c1", "customer")]
    assert session.closed and not session.ended  # cancelled, not finished


async def test_a_partition_assigned_back_keeps_its_open_call_live() -> None:
    running = Running()
    records = one_second_call("c1")
    running.consumer.deliver(0, values=records[: len(records) // 2])

    serving = asyncio.create_task(running.worker.serve(running.stop), name="test-serve")
    await running.producer.wait_until(lambda: running.types().count("segment.final") == 2)
    await running.worker.partitions_revoked({P0})
    await running.worker.partitions_assigned({P0})
    running.consumer.deliver(0, values=records[len(records) // 2 :])
    await running.producer.wait_until(lambda: "call.ended" in running.types())
    running.stop.set()
    await asyncio.wait_for(serving, 10)

    finals = [e for e in running.transcripts() if isinstance(e, FinalSegment)]
    assert [(f.start_ms, f.end_ms) for f in finals] == [(s, s + 200) for s in range(0, 1_000, 200)]
    assert running.types().count("call.started") == 1
    (session,) = running.sessions.sessions[("c1", "customer")]  # one session: not restarted
    assert session.ended


def _two_partitions(**config: object) -> Running:
    running = Running()
    running.consumer = FakeConsumer(TOPICS.audio, partitions=(0, 1))
    running.producer = FakeProducer(running.consumer.log)
    cfg = TranscribeConfig(metrics_address="off", commit_interval_s=0.05, **config)
    running.worker = TranscribeWorker(cfg, running.consumer, running.producer, running.sessions)
    return running


async def test_above_max_live_calls_a_partition_waits_at_its_new_call_until_one_ends() -> None:
    running = _two_partitions(max_live_calls=1)
    first, second = one_second_call("c1"), one_second_call("c2")
    running.consumer.deliver(0, values=first[:-1])  # c1 stays open
    running.consumer.deliver(1, values=second)

    serving = asyncio.create_task(running.worker.serve(running.stop), name="test-serve")
    await running.producer.wait_until(lambda: running.types().count("segment.final") == 5)
    await running.producer.wait_until(lambda: metrics.PARTITIONS_HELD._value.get() == 1)
    assert [e.call_id for e in running.transcripts() if e.type == "call.started"] == ["c1"]

    running.consumer.deliver(0, values=first[-1:])  # c1 ends: room for c2
    await running.producer.wait_until(lambda: running.types().count("call.ended") == 2)
    running.stop.set()
    await asyncio.wait_for(serving, 10)

    assert metrics.PARTITIONS_HELD._value.get() == 0
    ends = [e.call_id for e in running.transcripts() if e.type == "call.ended"]
    assert ends == ["c1", "c2"]


async def test_a_silent_call_without_an_end_is_ended_here_with_a_reason() -> None:
    running = _two_partitions(idle_call_timeout_s=60)
    records = one_second_call("c1")
    running.consumer.deliver(0, values=records[:-1])

    serving = asyncio.create_task(running.worker.serve(running.stop), name="test-serve")
    await running.producer.wait_until(lambda: running.types().count("segment.final") == 5)
    assert running.worker.end_stale_calls(time.monotonic() + 1) == []
    assert running.worker.end_stale_calls(time.monotonic() + 61) == ["c1"]
    await running.producer.wait_until(lambda: "call.ended" in running.types())
    running.consumer.deliver(0, values=records[-1:])  # the source's own end comes late
    await running.producer.wait_until(lambda: len(running.producer.values(TOPICS.deadletter)) == 1)
    running.stop.set()
    await asyncio.wait_for(serving, 10)

    (ended,) = [e for e in running.transcripts() if e.type == "call.ended"]
    assert ended.reason == "idle" and running.types()[-1] == "call.ended"
    assert b"call_already_ended" in running.producer.values(TOPICS.deadletter)[0]
    (session,) = running.sessions.sessions[("c1", "customer")]
    assert session.ended  # finished, not cancelled


async def test_a_partition_taken_over_is_decoded_from_where_the_finals_already_out_end() -> None:
    running = Running()
    reads: list[set[int]] = []

    async def read_covered(partitions: set[int]) -> ReadBack:
        reads.append(partitions)
        assert running.consumer.paused == {P0}  # nothing is handled before the finals are known
        return ReadBack(covered={("c1", "customer"): 600})

    config = TranscribeConfig(metrics_address="off", commit_interval_s=0.05)
    running.worker = TranscribeWorker(
        config, running.consumer, running.producer, running.sessions, read_covered=read_covered
    )
    await running.worker.partitions_revoked(set())
    await running.worker.partitions_assigned({P0})
    assert reads == [{0}] and running.consumer.paused == set()
    running.consumer.deliver(0, values=one_second_call("c1"))

    serving = asyncio.create_task(running.worker.serve(running.stop), name="test-serve")
    await running.producer.wait_until(lambda: "call.ended" in running.types())
    running.stop.set()
    await asyncio.wait_for(serving, 10)

    finals = [e for e in running.transcripts() if isinstance(e, FinalSegment)]
    assert [(f.start_ms, f.end_ms) for f in finals] == [(600, 800), (800, 1000)]  # 0-600 was final already
    await running.worker.partitions_revoked({P0})
    await running.worker.partitions_assigned({P0})
    assert reads == [{0}]  # kept, not taken over: nothing to read


async def test_a_planned_stop_finishes_the_turns_in_flight_and_leaves_the_call_open() -> None:
    running = Running()
    records = one_second_call("c1")
    running.consumer.deliver(0, values=records[:36])  # call.started + 35 frames: 700 ms, a turn in flight

    serving = asyncio.create_task(running.worker.serve(running.stop), name="test-serve")
    await running.producer.wait_until(lambda: running.types().count("segment.final") == 3)
    running.stop.set()
    await asyncio.wait_for(serving, 10)

    finals = [e for e in running.transcripts() if isinstance(e, FinalSegment)]
    assert [(f.start_ms, f.end_ms) for f in finals] == [(0, 200), (200, 400), (400, 600), (600, 700)]
    assert "call.ended" not in running.types()  # the next owner goes on with the call
    (session,) = running.sessions.sessions[("c1", "customer")]
    assert session.ended  # its input was ended, not cancelled
    assert running.consumer.log[-2:] == ["flush", "commit"] and running.consumer.commits[-1] == {P0: 0}


def _resuming(read: ReadBack) -> Running:
    """A worker that reads the transcript topic back on a takeover (here: `read`)."""
    running = Running()

    async def read_covered(partitions: set[int]) -> ReadBack:
        return read

    config = TranscribeConfig(metrics_address="off", commit_interval_s=60)
    running.worker = TranscribeWorker(
        config, running.consumer, running.producer, running.sessions, read_covered=read_covered
    )
    return running


async def test_an_open_call_is_committed_up_to_its_turn_in_flight_not_its_start() -> None:
    running = _resuming(ReadBack())
    records = one_second_call("c1")
    running.consumer.deliver(0, values=records[:36])  # call.started + 35 frames: 700 ms, a turn in flight

    serving = asyncio.create_task(running.worker.serve(running.stop), name="test-serve")
    await running.producer.wait_until(lambda: running.types().count("segment.final") == 3)
    watermark = running.worker._intake.watermark
    # Finals cover 0-600 ms; the turn in flight starts at frame 30 (600 ms), record offset 31.
    assert watermark.to_commit() == {0: 31}
    assert await running.worker.refresh_call_starts(time.time() + 60) == []
    assert await running.worker.refresh_call_starts(time.time() + 1_800) == ["c1"]  # half the lookback
    running.stop.set()
    await asyncio.wait_for(serving, 10)

    assert running.types().count("call.started") == 2  # emitted again: a takeover still finds it
    assert running.consumer.commits[-1] == {P0: 36}  # the drain's final covers the turn in flight


async def test_a_call_taken_over_past_its_start_is_opened_from_the_transcript_topic() -> None:
    started = TranscriptCallStarted(call_id="c1", started_at=time.time(), metadata={"language": "en"})
    read = ReadBack(
        covered={("c1", "customer"): 600},
        open_calls={"c1": OpenCall(0, started, time.time())},
        ended={"c0": 0},
    )
    running = _resuming(read)
    await running.worker.partitions_revoked(set())
    await running.worker.partitions_assigned({P0})
    # Committed at the old owner's turn in flight: from frame 30 (600 ms) on, then call.ended. A
    # call the transcript topic does not know still has its frames dead-lettered; one it says has
    # ended (its last records read again) is done with.
    running.consumer.deliver(
        0, values=one_second_call("c0")[-3:] + one_second_call("c1")[31:] + one_second_call("c2")[1:3]
    )

    serving = asyncio.create_task(running.worker.serve(running.stop), name="test-serve")
    await running.producer.wait_until(
        lambda: "call.ended" in running.types() and len(running.producer.values(TOPICS.deadletter)) == 2
    )
    running.stop.set()
    await asyncio.wait_for(serving, 10)

    finals = [e for e in running.transcripts() if isinstance(e, FinalSegment)]
    assert [(f.start_ms, f.end_ms) for f in finals] == [(600, 800), (800, 1000)]
    assert running.types() == ["segment.final", "segment.final", "call.ended"]  # no call.started again
    dead = running.producer.values(TOPICS.deadletter)
    assert len(dead) == 2 and all(b"call_not_started" in v for v in dead)  # c2's two frames; c0's none
    assert running.sessions.languages[("c1", "customer")] == "en"
