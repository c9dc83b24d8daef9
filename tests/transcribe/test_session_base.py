"""The session base both engines share: bounded input, end of input, event iteration, close."""

from __future__ import annotations

import asyncio

import pytest

from transcribe.session import FinalText, InvalidAudio, SessionClosed
from transcribe.session_base import END, QueuedSession


class EchoSession(QueuedSession):
    """Each chunk becomes one final giving its byte count; end of input ends the events."""

    def __init__(self, max_queued_chunks: int = 2) -> None:
        super().__init__(max_queued_chunks=max_queued_chunks, events_queue_size=8)
        self.go = asyncio.Event()

    def _start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._echo(), name="test-echo")]

    async def _echo(self) -> None:
        await self.go.wait()
        while (chunk := await self._input.get()) is not END:
            assert isinstance(chunk, bytes)
            await self._events.put(FinalText(0, 0, str(len(chunk))))
        await self._events.put(END)


async def test_events_follow_the_audio_and_end_after_end_input() -> None:
    async with EchoSession() as session:
        session.go.set()
        await session.send_audio(b"\0" * 4)
        await session.send_audio(b"")  # nothing to send: not queued
        await session.send_audio(b"\0" * 6)
        await session.end_input()
        await session.end_input()  # a second end is a no-op
        assert [e.text async for e in session.events()] == ["4", "6"]


async def test_send_audio_waits_while_the_input_queue_is_full() -> None:
    async with EchoSession(max_queued_chunks=1) as session:
        await session.send_audio(b"\0\0")
        blocked = asyncio.create_task(session.send_audio(b"\0\0"), name="test-blocked-send")
        await asyncio.sleep(0)
        assert not blocked.done()
        session.go.set()
        await asyncio.wait_for(blocked, 5)


async def test_audio_is_refused_before_start_after_end_and_when_odd() -> None:
    session = EchoSession()
    with pytest.raises(SessionClosed):
        await session.send_audio(b"\0\0")
    async with session:
        with pytest.raises(InvalidAudio):
            await session.send_audio(b"\0")
        await session.end_input()
        with pytest.raises(SessionClosed):
            await session.send_audio(b"\0\0")


async def test_aclose_cancels_the_tasks_and_ends_the_events() -> None:
    session = EchoSession()
    async with session:
        pass  # its task never got going
    assert [e async for e in session.events()] == []
    with pytest.raises(SessionClosed):
        await session.send_audio(b"\0\0")
