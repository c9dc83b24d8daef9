"""In-memory SpeechSession for unit tests of the code around the engine seam."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

from ingest.events import Leg
from transcribe.session import FinalText, SessionClosed, SessionEvent

_END = object()


class FakeSession:
    """Counts audio; every `turn_ms` of audio becomes a FinalText "turn N"; end_input finalises the rest."""

    def __init__(self, turn_ms: int = 1_000, max_queued: int = 8) -> None:
        self.turn_ms = turn_ms
        self.received = bytearray()
        self.closed = False
        self.ended = False
        self._turn_start_ms = 0
        self._events: asyncio.Queue[SessionEvent | object] = asyncio.Queue(max_queued)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def received_ms(self) -> int:
        return len(self.received) // 32

    async def send_audio(self, pcm16_16k: bytes) -> None:
        if self.ended or self.closed:
            raise SessionClosed()
        self.received += pcm16_16k
        while self.received_ms - self._turn_start_ms >= self.turn_ms:
            await self._final(self._turn_start_ms + self.turn_ms)

    async def end_input(self) -> None:
        self.ended = True
        if self.received_ms > self._turn_start_ms:
            await self._final(self.received_ms)
        await self._events.put(_END)

    async def _final(self, end_ms: int) -> None:
        text = f"turn {self._turn_start_ms // self.turn_ms}"
        await self._events.put(FinalText(self._turn_start_ms, end_ms, text, 0.9))
        self._turn_start_ms = end_ms

    async def events(self) -> AsyncIterator[SessionEvent]:
        while True:
            item = await self._events.get()
            if item is _END:
                return
            assert isinstance(item, SessionEvent.__args__)  # type: ignore[attr-defined]
            yield item

    async def aclose(self) -> None:
        # As the seam says: events() ends after aclose().
        if not self.closed and self._events.empty():
            self._events.put_nowait(_END)
        self.closed = True


class FakeSessionFactory:
    def __init__(self, turn_ms: int = 1_000) -> None:
        self.turn_ms = turn_ms
        self.sessions: dict[tuple[str, Leg], list[FakeSession]] = {}

    def __call__(self, *, call_id: str, leg: Leg) -> FakeSession:
        session = FakeSession(self.turn_ms)
        self.sessions.setdefault((call_id, leg), []).append(session)
        return session
