"""Resume, not redo: where the finals already emitted for a call end, per leg.

A worker that takes a partition over reads its calls from the committed offset, which is the
oldest open call's call.started: everything those calls said so far would be decoded again.
Before handling the partition it reads the transcript topic's partition of the same number
(both topics are keyed by call id, with the same partition count) for the finals of the last
`lookback_s`, and skips the frames of each leg that lie before the end of that leg's last final:
decoding starts at the turn in flight, whatever the call's length. Finals keep their
deterministic ids (positions in the leg), so what the old owner emitted is never emitted again,
and the new turns start where its finals ended, so none overlaps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from ingest.events import AudioFrame, Leg
from pipeline.contract import InvalidEvent
from transcribe.events import FinalSegment, TranscriptCallEnded, parse_transcript_event

log = logging.getLogger(__name__)

Covered = dict[tuple[str, Leg], int]  # (call id, leg) -> end of the last final seen, ms in the leg


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
) -> Covered:
    """The finals' ends per leg on these partitions of the transcript topic, from `lookback_s` ago
    until past the end offsets and a fetch comes back empty (Tansu's end offset can fall short by
    its last batch), or `deadline_s` passes.

    `idle_ms` is short: once a position is past its end offset, the first record of the last
    batch was fetched, and with it the whole batch (a fetch returns whole batches, which the
    consumer buffers), so what is still unread is already here and returned at once. The empty
    fetch only confirms that; it is waited for on every takeover (300 ms before: 0.3 s of the
    catch-up)."""
    tps = [TopicPartition(topic, p) for p in partitions]
    if not tps:
        return {}
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
    ended: set[str] = set()
    started = time.monotonic()
    records = 0
    while time.monotonic() - started < deadline_s:
        batches = await consumer.getmany(*tps, timeout_ms=idle_ms, max_records=5_000)
        if not batches:
            positions = [await consumer.position(tp) for tp in tps]
            if all(at >= ends[tp] for at, tp in zip(positions, tps, strict=True)):
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
                elif isinstance(event, TranscriptCallEnded):
                    ended.add(event.call_id)
    else:
        # Finals not seen could lie past what was read: resuming there would decode audio already
        # final again, as turns cut differently (the same words twice, under other ids). Decoding
        # the calls from their start instead re-sends the same finals with the same ids.
        log.warning(
            "transcript read for resume cut short; decoding from the start", extra={"deadline_s": deadline_s}
        )
        return {}
    covered = {key: end for key, end in covered.items() if key[0] not in ended}
    log.info(
        "finals read for resume",
        extra={
            "partitions": sorted(tp.partition for tp in tps),
            "records": records,
            "legs": len(covered),
            "read_s": round(time.monotonic() - started, 2),
        },
    )
    return covered
