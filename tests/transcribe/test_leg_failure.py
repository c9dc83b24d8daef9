"""A leg whose session stops taking audio is failed on its own: it reports a LegError and closes."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.transcribe.calls import frames_of
from tests.transcribe.fakes import FakeSession
from transcribe.codec import LegDecoder
from transcribe.events import LegError
from transcribe.leg import LegStream


async def test_failing_a_stalled_leg_reports_a_leg_error_and_ends_its_session() -> None:
    emitted = []

    async def emit(event):
        emitted.append(event)

    session = FakeSession(turn_ms=60_000, max_queued=1)
    frames = frames_of("c1", "agent", np.zeros(8_000, dtype=np.int16), sample_rate_hz=8_000)
    stream = LegStream(
        call_id="c1",
        leg="agent",
        session=session,
        decoder=LegDecoder(frames[0].codec, frames[0].sample_rate_hz),
        base_position=0,
        emit=emit,
        max_gap_samples=16_000,
    )
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(stream.run(), name="test-leg")
        await stream.feed(frames[0], received_at=frames[0].captured_at)
        await stream.fail("engine_stalled", retryable=True)
        await run
    assert stream.ended and session.closed
    errors = [e for e in emitted if isinstance(e, LegError)]
    assert [(e.call_id, e.leg, e.code, e.retryable) for e in errors] == [
        ("c1", "agent", "engine_stalled", True)
    ]
    assert stream.error is not None and stream.error.code == "engine_stalled"
