"""Replay a recorded call onto the audio topic at real-time pace, as a telephony source would.

Sends CallStarted, then both legs' 20 ms frames interleaved in time order, then CallEnded, all
keyed by call_id so they land in one partition in order. Bounded: it ends with the recording.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from ingest.events import AudioFrame, CallEnded, CallStarted, Codec, Direction
from ingest.wavsource import LegFrame, OutputFormat, Recording, call_frames, load_legs, load_stereo
from pipeline.kafka import make_producer
from pipeline.topics import TOPICS

log = logging.getLogger(__name__)

DEFAULT_FORMAT = OutputFormat(Codec.MULAW, 8000)
_PENDING_LIMIT = 500  # delivery futures awaited in batches: bounded memory, errors surface early
_LATE_WARNING_S = 0.5


@dataclass(frozen=True)
class ReplayCall:
    """One call to replay: its audio and the metadata its CallStarted carries."""

    recording: Recording
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    agent_id: str = ""
    queue: str = ""
    direction: Direction = "inbound"
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_stereo(cls, path: Path | str, **kwargs: Any) -> ReplayCall:
        return cls(recording=load_stereo(path), **kwargs)

    @classmethod
    def from_legs(cls, agent: Path | str, customer: Path | str, **kwargs: Any) -> ReplayCall:
        return cls(recording=load_legs(agent, customer), **kwargs)


@dataclass(frozen=True)
class ReplayResult:
    call_id: str
    frames_sent: int
    audio_seconds: float
    wall_seconds: float
    completed: bool  # False when stopped early; the call was still ended


@dataclass(frozen=True)
class PacedClock:
    """Where each frame's slot falls: `speed` times real time from a monotonic and a wall start.

    speed 0 means no pacing; the slot's wall time is then the time the frame is sent.
    """

    speed: float
    monotonic_start: float
    wall_start: float

    def due_monotonic(self, offset_s: float) -> float:
        return self.monotonic_start + (offset_s / self.speed if self.speed > 0 else 0.0)

    def slot_wall_time(self, offset_s: float, now_wall: float) -> float:
        return self.wall_start + offset_s / self.speed if self.speed > 0 else now_wall


async def replay_call(
    bootstrap: str,
    call: ReplayCall,
    speed: float = 1.0,
    *,
    fmt: OutputFormat = DEFAULT_FORMAT,
    topic: str = TOPICS.audio,
    producer: AIOKafkaProducer | None = None,
    stop: asyncio.Event | None = None,
    source: str = "replay",
    monotonic: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> ReplayResult:
    """Produce one call to the audio topic; returns when every record is acknowledged.

    A set `stop` ends the call early with reason "replay_stopped" (still a well-formed call).
    """
    if speed < 0:
        raise ValueError("speed must be >= 0 (0 = as fast as possible)")
    # Encoding a minute of audio takes a second or two of CPU: keep it off the event loop.
    frames = await asyncio.to_thread(call_frames, call.recording, fmt)
    own_producer = producer is None
    if producer is None:
        producer = make_producer(bootstrap, client_id="callscope-ingest-replay", linger_ms=2)
        await producer.start()
    try:
        return await _send_call(producer, topic, call, frames, fmt, speed, stop, source, monotonic, wall)
    finally:
        if own_producer:
            await producer.stop()


async def _send_call(
    producer: AIOKafkaProducer,
    topic: str,
    call: ReplayCall,
    frames: list[LegFrame],
    fmt: OutputFormat,
    speed: float,
    stop: asyncio.Event | None,
    source: str,
    monotonic: Callable[[], float],
    wall: Callable[[], float],
) -> ReplayResult:
    key = call.call_id.encode()
    clock = PacedClock(speed=speed, monotonic_start=monotonic(), wall_start=wall())
    pending: list[asyncio.Future[object]] = []

    async def send(value: bytes, at: float) -> None:
        pending.append(await producer.send(topic, value, key=key, timestamp_ms=round(at * 1000)))
        if len(pending) >= _PENDING_LIMIT:
            await asyncio.gather(*pending)
            pending.clear()

    started = CallStarted(
        call_id=call.call_id,
        started_at=clock.wall_start,
        agent_id=call.agent_id,
        queue=call.queue,
        direction=call.direction,
        source=source,
        metadata=call.metadata,
    )
    await send(started.to_bytes(), clock.wall_start)
    log.info(
        "replay started",
        extra={"call_id": call.call_id, "frames": len(frames), "speed": speed, "codec": fmt.codec.name},
    )
    sent = 0
    late_warned = False
    for frame in frames:
        if stop is not None and stop.is_set():
            break
        delay = clock.due_monotonic(frame.offset_s) - monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif speed > 0 and -delay > _LATE_WARNING_S and not late_warned:
            late_warned = True
            log.warning("replay behind schedule", extra={"call_id": call.call_id, "late_s": round(-delay, 3)})
        captured_at = clock.slot_wall_time(frame.offset_s, wall())
        record = AudioFrame(
            call_id=call.call_id,
            leg=frame.leg,
            codec=fmt.codec,
            sample_rate_hz=frame.sample_rate_hz,
            seq=frame.seq,
            offset_samples=frame.offset_samples,
            captured_at=captured_at,
            payload=frame.payload,
        )
        await send(record.to_bytes(), captured_at)
        sent += 1
    completed = sent == len(frames)
    audio_seconds = call.recording.duration_s
    if completed and speed > 0:  # hang up when the last frame's audio has played out
        await asyncio.sleep(max(0.0, clock.due_monotonic(audio_seconds) - monotonic()))
    ended_at = clock.slot_wall_time(audio_seconds, wall()) if completed else wall()
    ended = CallEnded(
        call_id=call.call_id, ended_at=ended_at, reason="hangup" if completed else "replay_stopped"
    )
    await send(ended.to_bytes(), ended_at)
    await producer.flush()
    await asyncio.gather(*pending)
    wall_seconds = monotonic() - clock.monotonic_start
    log.info(
        "replay finished",
        extra={
            "call_id": call.call_id,
            "frames": sent,
            "completed": completed,
            "wall_s": round(wall_seconds, 3),
        },
    )
    return ReplayResult(
        call_id=call.call_id,
        frames_sent=sent,
        audio_seconds=audio_seconds,
        wall_seconds=wall_seconds,
        completed=completed,
    )
