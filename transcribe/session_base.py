"""What every SpeechSession shares, as livekit-agents' RecognizeStream does for its providers.

A bounded input queue that `send_audio` waits on (the backpressure), closed by `end_input()`; a
bounded event queue that `events()` reads until the end marker; the session's own tasks, started
on `async with` and cancelled by `aclose()`. An engine's session says which tasks it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

from transcribe.session import FinalText, InvalidAudio, PartialText, SessionClosed, SessionError, SessionEvent

END = object()  # the marker after the last chunk of input, and after the last event


class QueuedSession(ABC):
    """A SpeechSession whose audio goes through an input queue and whose events come from a queue."""

    def __init__(self, *, max_queued_chunks: int, events_queue_size: int) -> None:
        self._input: asyncio.Queue[bytes | object] = asyncio.Queue(max_queued_chunks)
        self._events: asyncio.Queue[SessionEvent | object] = asyncio.Queue(events_queue_size)
        self._input_ended = False  # end_input() or aclose() was called
        self._stopped = False  # the session's tasks ended on their own: it takes no more input
        self._started = False
        self._tasks: list[asyncio.Task[None]] = []

    @abstractmethod
    def _start(self) -> list[asyncio.Task[None]]:
        """Create the session's tasks; aclose() cancels and awaits them."""

    # -- the SpeechSession seam -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tasks = self._start()
        self._started = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def send_audio(self, pcm16_16k: bytes) -> None:
        if self._input_ended or self._stopped or not self._started:
            raise SessionClosed()
        if len(pcm16_16k) % 2:
            raise InvalidAudio()
        if pcm16_16k:
            await self._input.put(pcm16_16k)

    async def end_input(self) -> None:
        if self._input_ended or self._stopped:
            return
        self._input_ended = True
        await self._input.put(END)

    async def events(self) -> AsyncIterator[SessionEvent]:
        while True:
            item = await self._events.get()
            if item is END:
                return
            assert isinstance(item, PartialText | FinalText | SessionError)
            yield item

    async def aclose(self) -> None:
        """Stop at once: audio and turns not yet final are dropped (call end_input first to keep them)."""
        self._input_ended = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        # gather() re-raises if aclose() itself is cancelled; the tasks' CancelledError is expected.
        await asyncio.gather(*tasks, return_exceptions=True)
        if tasks:
            with contextlib.suppress(asyncio.QueueFull):
                self._events.put_nowait(END)
