"""Listen-in: one call's audio frames from the audio topic, from about now, as a byte stream.

Only the call's partition is read (the producer's key partitioner tells which), positioned by
timestamp a moment back, so the browser starts playing within a second of the live audio.
Wire format to the browser, per frame: little-endian u32 length of the rest, u8 leg (0 agent,
1 customer), u8 codec (1 PCM16, 2 mu-law), u16 sample rate in Hz, f64 captured_at (epoch s),
then the frame's payload in its source codec (the browser decodes it).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from ingest.events import AudioFrame, CallEnded, is_audio_frame, parse_audio_record
from pipeline.contract import InvalidEvent

_HEADER = struct.Struct("<IBBHd")
_LEG = {"agent": 0, "customer": 1}
START_BACK_S = 0.3  # begin this far behind now: enough to fill the browser's jitter buffer
MAX_LISTEN_S = 4 * 3600  # a forgotten tab stops eventually
FETCH_MAX_WAIT_MS = 50


def encode_frame(frame: AudioFrame) -> bytes:
    body_len = _HEADER.size - 4 + len(frame.payload)
    return (
        _HEADER.pack(body_len, _LEG[frame.leg], int(frame.codec), frame.sample_rate_hz, frame.captured_at)
        + frame.payload
    )


def partition_of(call_id: str, partitions: list[int]) -> int:
    """The partition the ingest producer wrote this call to (aiokafka's murmur2 key partitioner)."""
    ordered = sorted(partitions)
    return DefaultPartitioner()(call_id.encode(), ordered, ordered)


async def listen(
    bootstrap: str, topic: str, call_id: str, *, client_id: str = "callscope-console-listen"
) -> AsyncIterator[bytes]:
    """Yield encoded frames of both legs of `call_id` until the call ends (or MAX_LISTEN_S)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,  # an idle fetch returns this soon: part of the delay heard
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            return
        tp = TopicPartition(topic, partition_of(call_id, list(partitions)))
        consumer.assign([tp])
        start_ms = int((time.time() - START_BACK_S) * 1000)
        found = await consumer.offsets_for_times({tp: start_ms})
        if found.get(tp) is not None:
            consumer.seek(tp, found[tp].offset)
        else:
            await consumer.seek_to_end(tp)
        key = call_id.encode()
        deadline = time.monotonic() + MAX_LISTEN_S
        while time.monotonic() < deadline:
            batches = await consumer.getmany(tp, timeout_ms=100, max_records=500)
            for record in batches.get(tp, ()):
                if record.key != key or record.timestamp < start_ms:
                    continue
                if not is_audio_frame(record.value):
                    try:
                        if isinstance(parse_audio_record(record.value), CallEnded):
                            return
                    except InvalidEvent:
                        pass
                    continue
                try:
                    frame = parse_audio_record(record.value)
                except InvalidEvent:
                    continue
                assert isinstance(frame, AudioFrame)
                yield encode_frame(frame)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
