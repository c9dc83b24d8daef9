"""The legs of a worker's calls: open, retire, fail, close and drop, over in-memory sessions."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from ingest.events import AudioFrame
from tests.transcribe.calls import frames_of
from tests.transcribe.fakes import FakeSession, FakeSessionFactory
from transcribe.events import FinalSegment, TranscriptEvent
from transcribe.leg import LegStream
from transcribe.registry import CallLegs


class Legs:
    """A CallLegs whose tasks run in a TaskGroup, with FakeSessions and a list of what was emitted."""

    def __init__(self, tg: asyncio.TaskGroup) -> None:
        self.sessions = FakeSessionFactory(turn_ms=200)
        self.emitted: list[TranscriptEvent | str] = []
        self.registry = CallLegs(lambda coro, name: tg.create_task(coro, name=name))

    async def emit(self, event: TranscriptEvent) -> None:
        self.emitted.append(event)

    def new(self, frame: AudioFrame) -> LegStream:
        session = self.sessions(call_id=frame.call_id, leg=frame.leg)
        return LegStream.from_frame(frame, session=session, emit=self.emit, max_gap_samples=16_000)

    async def feed(self, frame: AudioFrame) -> LegStream | None:
        stream = await self.registry.stream_for(frame, self.new)
        if stream is not None:
            await stream.feed(frame, received_at=frame.captured_at)
        return stream


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Legs]:
    """Legs whose tasks are cancelled, and awaited, at the end of the block."""
    async with asyncio.TaskGroup() as tg:
        legs = Legs(tg)
        yield legs
        legs.registry.cancel_all()


def task_named(name: str) -> asyncio.Task:
    return next(task for task in asyncio.all_tasks() if task.get_name() == name)


def frames(call_id: str = "c1", leg: str = "agent", seconds: float = 1.0) -> list[AudioFrame]:
    return frames_of(call_id, leg, np.zeros(int(8_000 * seconds), dtype=np.int16), sample_rate_hz=8_000)


async def test_a_legs_frames_go_to_the_one_stream_its_first_frame_opened() -> None:
    async with running() as legs:
        first, second = frames()[:2]

        opened = await legs.feed(first)

        assert await legs.feed(second) is opened
        assert legs.registry.active("c1", "agent") is opened
        assert len(legs.sessions.sessions[("c1", "agent")]) == 1


async def test_a_frame_past_a_long_gap_retires_the_stream_and_opens_a_new_one() -> None:
    async with running() as legs:
        first = frames()[0]
        later = dataclasses.replace(first, seq=500, offset_samples=8_000 * 10)  # 10 s on: past the 1 s gap

        old = await legs.feed(first)
        new = await legs.feed(later)

        assert new is not old and legs.registry.active("c1", "agent") is new
        old_session, _ = legs.sessions.sessions[("c1", "agent")]
        assert old_session.ended  # its input ended: it runs on until its finals are out


async def test_a_leg_whose_session_failed_for_good_is_given_up_until_its_call_ends() -> None:
    async with running() as legs:
        first, second, third = frames()[:3]
        stream = await legs.feed(first)
        assert stream is not None
        await stream.fail("invalid_audio", retryable=False)

        assert await legs.feed(second) is None and legs.registry.failed("c1", "agent")
        assert not legs.registry.fail("c1", "agent")  # given up on once

        legs.registry.close("c1", then=lambda: asyncio.sleep(0))
        await legs.registry.drain(10)
        assert not legs.registry.failed("c1", "agent")
        assert await legs.feed(third) is not None  # the call id again: a new call, a new session


async def test_a_leg_whose_session_failed_for_now_gets_a_new_session() -> None:
    async with running() as legs:
        first, second = frames()[:2]
        stream = await legs.feed(first)
        assert stream is not None
        await stream.fail("engine_stalled", retryable=True)

        assert await legs.feed(second) not in (None, stream)
        assert len(legs.sessions.sessions[("c1", "agent")]) == 2


async def test_closing_a_call_ends_both_legs_and_then_runs_after_their_finals() -> None:
    async with running() as legs:
        for agent, customer in zip(frames(leg="agent"), frames(leg="customer"), strict=True):
            await legs.feed(agent)
            await legs.feed(customer)

        async def call_ended() -> None:
            legs.emitted.append("call.ended")

        legs.registry.close("c1", then=call_ended)
        await legs.registry.drain(10)

        assert legs.emitted[-1] == "call.ended"
        finals = [e for e in legs.emitted if isinstance(e, FinalSegment)]
        assert {f.leg for f in finals} == {"agent", "customer"}
        assert len(finals) == 10  # 1 s per leg, in 200 ms turns
        assert legs.registry.active("c1", "agent") is None and len(legs.registry) == 0


async def test_dropping_a_call_cancels_its_streams_without_finishing_them() -> None:
    async with running() as legs:
        for frame in frames(seconds=0.1):
            await legs.feed(frame)
        leg_task = task_named("transcribe-leg-c1-agent")

        legs.registry.drop("c1")
        await asyncio.wait([leg_task], timeout=10)

        assert leg_task.cancelled()
        assert legs.registry.active("c1", "agent") is None and len(legs.registry) == 0
        assert not [e for e in legs.emitted if isinstance(e, FinalSegment)]
        assert not legs.sessions.sessions[("c1", "agent")][0].ended  # its input was never ended


async def test_legs_without_audio_for_the_idle_timeout_are_retired() -> None:
    async with running() as legs:
        idle = await legs.feed(frames(call_id="idle")[0])
        busy = await legs.feed(frames(call_id="busy")[0])
        assert idle is not None and busy is not None
        idle.last_audio_at -= 31

        assert legs.registry.retire_idle(time.monotonic(), idle_s=30) == [idle]

        assert legs.registry.active("idle", "agent") is None
        assert legs.registry.active("busy", "agent") is busy


class SlowToFinish(FakeSession):
    """A session whose end_input waits until `finish` is set, as an engine flushing its last final."""

    def __init__(self) -> None:
        super().__init__(turn_ms=200)
        self.finish = asyncio.Event()

    async def end_input(self) -> None:
        await self.finish.wait()
        await super().end_input()


@pytest.mark.parametrize("closer_started", [True, False])
async def test_dropping_a_call_while_it_closes_cancels_every_one_of_its_streams(closer_started: bool) -> None:
    async with running() as legs:
        slow = SlowToFinish()
        agent, customer = frames(leg="agent")[0], frames(leg="customer")[0]
        await legs.registry.stream_for(
            agent, lambda f: LegStream.from_frame(f, session=slow, emit=legs.emit, max_gap_samples=16_000)
        )
        await legs.feed(customer)
        customer_task = task_named("transcribe-leg-c1-customer")
        legs.registry.close("c1", then=lambda: asyncio.sleep(0))
        closer = task_named("transcribe-close-c1")
        if closer_started:
            await asyncio.sleep(0)  # one turn of the loop: the closer starts and waits on the slow agent leg

        legs.registry.drop("c1")
        await asyncio.wait([closer, customer_task], timeout=10)

        assert closer.cancelled() and customer_task.done()
        assert len(legs.registry) == 0
