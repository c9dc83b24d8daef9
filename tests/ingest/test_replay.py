"""Replaying a recorded call onto the audio topic of a real (embedded Tansu) broker."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer

from ingest.events import AudioFrame, CallEnded, CallStarted, Codec, parse_audio_record
from ingest.replay import ReplayCall, replay_call
from ingest.wavsource import OutputFormat, write_stereo_wav
from pipeline.kafka import create_topics
from pipeline.topics import Topics

PARTITIONS = 4
_suffix = itertools.count()




@pytest.fixture
async def topic(bootstrap: str) -> str:
    n = next(_suffix)
    topics = Topics(audio=f"audio-replay-{n}", transcripts=f"t-{n}", assist=f"a-{n}", deadletter=f"d-{n}")
    await create_topics(bootstrap, PARTITIONS, topics)
    return topics.audio


def _stereo(tmp_path: Path, seconds: float, rate_hz: int = 16000) -> Path:
    rng = np.random.default_rng(1)
    n = int(seconds * rate_hz)
    path = tmp_path / "call.wav"
    write_stereo_wav(
        path,
        rng.integers(-2000, 2000, n).astype(np.int16),
        rng.integers(-2000, 2000, n).astype(np.int16),
        rate_hz,
    )
    return path


async def _read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0):
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(records) < expected:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_replayed_call_arrives_in_one_partition_started_frames_in_order_then_ended(
    bootstrap: str, topic: str, tmp_path: Path
) -> None:
    call = ReplayCall.from_stereo(
        _stereo(tmp_path, 1.0), call_id="call-replay-1", agent_id="a-7", queue="billing"
    )
    result = await replay_call(bootstrap, call, 0, fmt=OutputFormat(Codec.MULAW, 8000), topic=topic)
    assert result.completed and result.frames_sent == 100  # 1 s, two legs, 20 ms frames

    records = await _read_all(bootstrap, topic, result.frames_sent + 2)
    assert {r.partition for r in records} == {records[0].partition}
    assert all(r.key == b"call-replay-1" for r in records)
    events = [parse_audio_record(r.value) for r in sorted(records, key=lambda r: r.offset)]
    started, *frames, ended = events
    assert isinstance(started, CallStarted) and started.agent_id == "a-7" and started.queue == "billing"
    assert isinstance(ended, CallEnded) and ended.reason == "hangup"
    assert all(isinstance(f, AudioFrame) for f in frames)
    for leg in ("agent", "customer"):
        mine = [f for f in frames if f.leg == leg]
        assert [f.seq for f in mine] == list(range(50))
        assert [f.offset_samples for f in mine] == [i * 160 for i in range(50)]
        assert all(
            f.codec is Codec.MULAW and f.sample_rate_hz == 8000 and len(f.payload) == 160 for f in mine
        )
    assert [f.offset_samples for f in frames] == sorted(f.offset_samples for f in frames)
    assert started.started_at <= frames[0].captured_at <= ended.ended_at


async def test_paced_replay_stamps_capture_times_on_the_frame_slots(
    bootstrap: str, topic: str, tmp_path: Path
) -> None:
    call = ReplayCall.from_stereo(_stereo(tmp_path, 0.6, rate_hz=8000), call_id="call-paced")
    result = await replay_call(bootstrap, call, 4.0, fmt=OutputFormat(Codec.PCM16, 8000), topic=topic)
    records = await _read_all(bootstrap, topic, result.frames_sent + 2)
    events = [parse_audio_record(r.value) for r in sorted(records, key=lambda r: r.offset)]
    agent = [e for e in events if isinstance(e, AudioFrame) and e.leg == "agent"]
    gaps = np.diff([f.captured_at for f in agent])
    # At 4x, a 20 ms frame slot is 5 ms of wall time: capture times follow the slots exactly.
    assert np.allclose(gaps, 0.005, atol=1e-4)
    # Pacing is real: the replay took about 0.15 s (not asserted tightly; shared, noisy machines).
    assert result.wall_seconds >= 0.6 / 4 * 0.9


async def test_stopping_a_replay_still_ends_the_call(bootstrap: str, topic: str, tmp_path: Path) -> None:
    call = ReplayCall.from_stereo(_stereo(tmp_path, 2.0, rate_hz=8000), call_id="call-stopped")
    stop = asyncio.Event()
    stop.set()
    result = await replay_call(bootstrap, call, 1.0, topic=topic, stop=stop)
    assert not result.completed and result.frames_sent == 0
    records = await _read_all(bootstrap, topic, 2)
    events = [parse_audio_record(r.value) for r in sorted(records, key=lambda r: r.offset)]
    assert isinstance(events[0], CallStarted)
    assert isinstance(events[-1], CallEnded) and events[-1].reason == "replay_stopped"
