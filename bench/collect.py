"""What the benchmark reads back after a run: the calls' events from the topics, their rows in PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from analyze.events import AssistEvent, parse_assist_event
from bench.latency import StoredSegment
from pipeline.contract import InvalidEvent
from pipeline.topics import TOPICS
from store.models import Call, Segment
from transcribe.events import TranscriptEvent, parse_transcript_event

POLL_S = 0.5
MAX_RECORDS = 2_000_000  # a read-back never holds more than this many records
QUIET_POLL_MS = 500


async def calls_complete(engine: AsyncEngine, call_ids: Collection[str]) -> bool:
    """Every call has ended, and every stored final has its text and (if it has words) its sentiment.

    A call's finals precede its call.ended in one partition, so an ended call has all its finals
    stored; their sentiments come from the assist topic, which the store reads independently.
    """
    async with engine.connect() as conn:
        ended = await conn.scalar(
            select(func.count()).where(Call.call_id.in_(call_ids), Call.ended_at.is_not(None))
        )
        pending = await conn.scalar(
            select(func.count()).where(
                Segment.call_id.in_(call_ids),
                or_(
                    Segment.text.is_(None),
                    (func.btrim(Segment.text) != "") & Segment.sentiment_emitted_at.is_(None),
                ),
            )
        )
    return ended == len(call_ids) and pending == 0


async def wait_until_complete(engine: AsyncEngine, call_ids: Collection[str]) -> None:
    """Poll until `calls_complete`; the caller bounds the wait with its deadline."""
    while True:
        if await calls_complete(engine, call_ids):
            return
        await asyncio.sleep(POLL_S)


async def stored_segments(engine: AsyncEngine, call_ids: Collection[str]) -> list[StoredSegment]:
    query = select(Segment.segment_id, Segment.emitted_at, Segment.stored_at).where(
        Segment.call_id.in_(call_ids), Segment.emitted_at.is_not(None), Segment.stored_at.is_not(None)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [StoredSegment(sid, emitted.timestamp(), stored.timestamp()) for sid, emitted, stored in rows]


async def read_call_events(
    bootstrap: str, call_ids: Collection[str], since_s: float, timeout_s: float = 60.0
) -> tuple[list[TranscriptEvent], list[AssistEvent]]:
    """The calls' transcript and assist events, read from `since_s` (epoch) to the end of each topic.

    Bounded in records and time. Tansu's end offset can fall short by a batch, so the read goes
    on past it until a poll comes back empty: the pipeline is idle by now, nothing new arrives.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    keys = {call_id.encode() for call_id in call_ids}
    transcripts: list[TranscriptEvent] = []
    assist: list[AssistEvent] = []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="callscope-bench"
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in (TOPICS.transcripts, TOPICS.assist)
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        starts = await consumer.offsets_for_times({tp: int(since_s * 1000) for tp in parts})
        parts = [tp for tp in parts if starts.get(tp) is not None]  # None: nothing since then
        if not parts:
            return transcripts, assist
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, starts[tp].offset)
        ends = await consumer.end_offsets(parts)
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline and seen < MAX_RECORDS:
            batches = await consumer.getmany(timeout_ms=QUIET_POLL_MS)
            for tp, records in batches.items():
                seen += len(records)
                for record in records:
                    if record.key not in keys:
                        continue
                    try:
                        if tp.topic == TOPICS.transcripts:
                            transcripts.append(parse_transcript_event(record.value))
                        else:
                            assist.append(parse_assist_event(record.value))
                    except InvalidEvent:
                        continue
            if not batches and all([await consumer.position(tp) >= ends[tp] for tp in parts]):
                break
    finally:
        await consumer.stop()
    return transcripts, assist
