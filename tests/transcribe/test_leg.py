"""A leg's frames through the engine seam (in-memory fake session) into transcript events."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np

from tests.transcribe.calls import frames_of
from tests.transcribe.fakes import FakeSession
from transcribe.codec import LegDecoder
from transcribe.events import FinalSegment, segment_id
from transcribe.leg import LegStream

STARTED_AT = 1_700_000_000.0


async def _run_leg(frames, *, base_position=0):
    emitted = []

    async def emit(event):
        emitted.append(event)

    session = FakeSession(turn_ms=1_000)
    stream = LegStream(
        call_id="c1",
        leg="customer",
        session=session,
        decoder=LegDecoder(frames[0].codec, frames[0].sample_rate_hz),
        base_position=base_position,
        emit=emit,
        max_gap_samples=16_000 * 5,
        clock=lambda: STARTED_AT + 100,
    )
    async with asyncio.TaskGroup() as tg:
        tg.create_task(stream.run(), name="test-leg")
        for frame in frames:
            await stream.feed(frame, received_at=frame.captured_at + 0.01)
        await stream.end_input()
    return emitted, session


async def test_finals_carry_leg_positions_ids_and_capture_times():
    frames = frames_of("c1", "customer", np.zeros(8_000 * 3, dtype=np.int16), sample_rate_hz=8_000)
    events, session = await _run_leg(frames)
    assert session.received_ms == 3_000 and session.closed
    assert [(e.start_ms, e.end_ms) for e in events] == [(0, 1_000), (1_000, 2_000), (2_000, 3_000)]
    second = events[1]
    assert isinstance(second, FinalSegment)
    assert second.segment_id == segment_id("c1", "customer", 1_000)
    assert abs(second.times.speech_ended_at - (STARTED_AT + 2.0)) < 0.001
    assert abs(second.times.audio_received_at - (STARTED_AT + 1.99)) < 0.001
    assert second.times.emitted_at == STARTED_AT + 100


async def test_missing_frames_are_filled_with_silence_so_positions_follow_offsets():
    frames = frames_of("c1", "customer", np.zeros(8_000 * 2, dtype=np.int16), sample_rate_hz=8_000)
    del frames[10:20]  # 200 ms lost
    duplicate = dataclasses.replace(frames[5])
    events, session = await _run_leg([*frames[:6], duplicate, *frames[6:]])
    assert session.received_ms == 2_000
    assert [e.start_ms for e in events] == [0, 1_000]


async def test_a_session_started_mid_leg_reports_positions_from_the_legs_start():
    frames = frames_of("c1", "customer", np.zeros(16_000 * 2, dtype=np.int16), sample_rate_hz=16_000)
    later = frames[50:]  # the session begins 1 s into the leg
    events, _ = await _run_leg(later, base_position=16_000)
    assert [e.start_ms for e in events] == [1_000]
    assert events[0].segment_id == segment_id("c1", "customer", 1_000)
