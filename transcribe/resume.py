"""Resume, not redo: which calls are open on a partition taken over, and where their finals end.

A worker that takes a partition over reads it from the committed offset, which is the lowest
offset an open call still needed (watermark.py): about the turn in flight of each leg, so the
call.started of a call that began before it is not read again. Before handling the partition it
reads the transcript topic's partition of the same number (both topics are keyed by call id,
with the same partition count) for the last `lookback_s`: the call.started the transcriber
emitted for each call still open there (the calls it opens without their audio call.started),
and the finals, so that it skips the frames of each leg that lie before the end of that leg's
last final: decoding starts at the turn in flight, whatever the call's length. Finals keep their
deterministic ids (positions in the leg), so what the old owner emitted is never emitted again,
and the new turns start where its finals ended, so none overlaps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from ingest.events import AudioFrame, Leg
from pipeline.contract import InvalidEvent
from transcribe.events import FinalSegment, TranscriptCallEnded, TranscriptCallStarted, parse_transcript_event

log = logging.getLogger(__name__)

Covered = dict[tuple[str, Leg], int]  # (call id, leg) -> end of the last final seen, ms in the leg


@dataclass(frozen=True, slots=True)
class OpenCall:
    """A call started on the transcript topic and not ended there: its partition, its
    call.started as emitted, and when it was emitted (the record's timestamp, epoch seconds)."""

    partition: int
    started: TranscriptCallStarted
    emitted_at: float


@dataclass
class ReadBack:
    """What the transcript topic says about the partitions taken over."""

    covered: Covered = field(default_factory=dict)
    open_calls: dict[str, OpenCall] = field(default_factory=dict)
    ended: dict[str, int] = field(default_factory=dict)  # call id -> partition: ended there already
    complete: bool = True  # False: the read was cut short by its deadline


class ResumePoints:
    """Per leg, the audio already final: frames wholly or partly before it are not decoded again."""

    def __init__(self) -> None:
        self._covered: Covered = {}
        self._skipped: dict[tuple[str, Leg], int] = {}  # frames skipped so far per leg

    def add(self, covered: Covered) -> None:
        for key, end_ms in covered.items():
            self._covered[key] = max(end_ms, self._covered.get(key, 0))

    def skip(self, frame: AudioFrame) -> bool:
        """True for a frame that starts before the end of its leg's last final."""
        key = (frame.call_id, frame.leg)
        end_ms = self._covered.get(key)
        if end_ms is None:
            return False
        if frame.offset_samples * 1000 < end_ms * frame.sample_rate_hz:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return True
        del self._covered[key]  # past it: the leg is decoded from here on
        log.info(
            "leg decoding resumes after its finals",
            extra={
                "call_id": frame.call_id,
                "leg": frame.leg,
                "from_ms": end_ms,
                "frames_skipped": self._skipped.pop(key, 0),
            },
        )
        return False

    def forget(self, call_id: str) -> None:
        for leg in ("agent", "customer"):
            self._covered.pop((call_id, leg), None)
            self._skipped.pop((call_id, leg), None)

    def __len__(self) -> int:
        return len(self._covered)


async def read_covered(
    consumer: AIOKafkaConsumer,
    topic: str,
    partitions: Iterable[int],
    *,
    lookback_s: float,
    deadline_s: float,
    idle_ms: int = 50,
) -> ReadBack:
    """The open calls and the finals' ends per leg on these partitions of the transcript topic,
    from `lookback_s` ago until past the end offsets and a fetch comes back empty (Tansu's end
    offset can fall short by its last batch), or `deadline_s` passes.

    `idle_ms` is short: once a position is past its end offset, the first record of the last
    batch was fetched, and with it the whole batch (a fetch returns whole batches, which the
    consumer buffers), so what is still unread is already here and returned at once. The empty
    fetch only confirms that; it is waited for on every takeover (300 ms before: 0.3 s of the
    catch-up)."""
    tps = [TopicPartition(topic, p) for p in partitions]
    if not tps:
        return ReadBack()
    consumer.assign(tps)
    since_ms = int((time.time() - lookback_s) * 1000)
    found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
    for tp in tps:
        at = found.get(tp)
        if at is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, at.offset)
    ends = await consumer.end_offsets(tps)
    covered: Covered = {}
    ended: dict[str, int] = {}
    starts: dict[str, OpenCall] = {}
    complete = False
    started = time.monotonic()
    records = 0
    while time.monotonic() - started < deadline_s:
        batches = await consumer.getmany(*tps, timeout_ms=idle_ms, max_records=5_000)
        if not batches:
            positions = [await consumer.position(tp) for tp in tps]
            if all(at >= ends[tp] for at, tp in zip(positions, tps, strict=True)):
                complete = True
                break
            continue
        for batch in batches.values():
            for record in batch:
                records += 1
                try:
                    event = parse_transcript_event(record.value)
                except InvalidEvent:
                    continue
                if isinstance(event, FinalSegment):
                    key = (event.call_id, event.leg)
                    covered[key] = max(event.end_ms, covered.get(key, 0))
                elif isinstance(event, TranscriptCallStarted):
                    starts[event.call_id] = OpenCall(record.partition, event, record.timestamp / 1000)
                elif isinstance(event, TranscriptCallEnded):
                    ended[event.call_id] = record.partition
    if not complete:
        # What was read is used: frames are skipped only where a final was seen, but finals not
        # seen yet could lie past it (that audio is decoded again, as turns cut differently), and
        # a call whose call.started was not reached is unknown here (its frames dead-lettered).
        log.warning(
            "transcript read for resume cut short; finals may be sent again",
            extra={"deadline_s": deadline_s, "records": records},
        )
    covered = {key: end for key, end in covered.items() if key[0] not in ended}
    open_calls = {call_id: call for call_id, call in starts.items() if call_id not in ended}
    log.info(
        "finals read for resume",
        extra={
            "partitions": sorted(tp.partition for tp in tps),
            "records": records,
            "legs": len(covered),
            "open_calls": len(open_calls),
            "read_s": round(time.monotonic() - started, 2),
        },
    )
    return ReadBack(covered, open_calls, ended, complete)
