"""Resume points: which audio of a leg is final already, read from the real broker's transcript topic."""

from __future__ import annotations

import time

import pytest
from aiokafka import AIOKafkaConsumer

from ingest.events import AudioFrame, Codec
from pipeline.kafka import create_topics, make_producer
from pipeline.topics import TOPICS
from transcribe.events import (
    FinalSegment,
    PartialSegment,
    StageTimes,
    TranscriptCallEnded,
    TranscriptCallStarted,
    segment_id,
)
from transcribe.resume import ResumePoints, read_covered

pytestmark = pytest.mark.e2e


def _final(call_id: str, leg: str, start_ms: int, end_ms: int, cls=FinalSegment, **extra) -> bytes:
    now = time.time()
    times = StageTimes(audio_captured_at=now, audio_received_at=now, emitted_at=now)
    return cls(
        call_id=call_id,
        leg=leg,
        segment_id=segment_id(call_id, leg, start_ms),
        start_ms=start_ms,
        end_ms=end_ms,
        text="words",
        times=times,
        **extra,
    ).to_bytes()


def _frame(call_id: str, offset_samples: int) -> AudioFrame:
    return AudioFrame(
        call_id=call_id,
        leg="customer",
        codec=Codec.MULAW,
        sample_rate_hz=8_000,
        seq=offset_samples // 160,
        offset_samples=offset_samples,
        captured_at=0.0,
        payload=b"\xff" * 160,
    )


async def test_the_open_calls_and_where_each_leg_resumes_are_read_back(bootstrap) -> None:
    await create_topics(bootstrap, partitions=2)
    sent_from = time.time()
    producer = make_producer(bootstrap, client_id="test-resume")
    await producer.start()
    try:
        for value in (
            TranscriptCallStarted(call_id="open", started_at=1.0, queue="billing").to_bytes(),
            TranscriptCallStarted(call_id="gone", started_at=2.0).to_bytes(),
            _final("open", "customer", 0, 1_200),
            _final("open", "customer", 1_500, 2_750),
            _final("open", "agent", 300, 900),
            _final("open", "customer", 2_800, 3_900, cls=PartialSegment, revision=0),  # not final
            _final("gone", "customer", 0, 5_000),
            TranscriptCallEnded(call_id="gone", ended_at=time.time()).to_bytes(),
        ):
            await producer.send(TOPICS.transcripts, value, partition=1)
        await producer.flush()
    finally:
        await producer.stop()
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        read = await read_covered(reader, TOPICS.transcripts, {1}, lookback_s=600, deadline_s=10)
        cut_short = await read_covered(reader, TOPICS.transcripts, {1}, lookback_s=600, deadline_s=0)
        other = await read_covered(reader, TOPICS.transcripts, {0}, lookback_s=600, deadline_s=10)
    finally:
        await reader.stop()

    covered = read.covered
    assert read.complete and covered == {("open", "customer"): 2_750, ("open", "agent"): 900}  # not ended
    (call,) = read.open_calls.values()  # the call a new owner opens without its audio call.started
    assert (call.partition, call.started.call_id, call.started.queue) == (1, "open", "billing")
    assert sent_from - 0.01 <= call.emitted_at <= time.time()  # the record's timestamp (s), for the refresh
    assert not cut_short.complete and cut_short.covered == {} and cut_short.open_calls == {}
    assert other.complete and other.open_calls == {} and other.covered == {}

    points = ResumePoints()
    points.add(covered)
    # 8 kHz: 2 750 ms is sample 22 000; a frame starting before it is skipped, the leg goes on from it.
    assert [points.skip(_frame("open", s)) for s in (0, 21_920, 22_000, 160)] == [True, True, False, False]
    assert not points.skip(_frame("other", 0))
