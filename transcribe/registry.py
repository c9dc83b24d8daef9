"""The legs of the calls one worker holds, and what happens to them as calls go on and end.

A leg's stream is *active* while it takes the leg's audio. A retired stream (a gap too long for
it, an idle leg, a session that ended) takes no more audio but runs until its finals are out. A
*failed* leg is given up on until its call ends: its frames are dropped. Closing a call ends its
streams' input and waits for their finals; dropping it (its partition went to another worker)
cancels them, since the new owner reads the call's audio again from the committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ingest.events import AudioFrame, Leg
from transcribe.leg import LegStream

log = logging.getLogger(__name__)

LEGS: tuple[Leg, ...] = ("agent", "customer")
_Running = tuple[LegStream, asyncio.Task[None]]  # a stream and the task running it


class CallLegs:
    """Every stream and task of the worker's calls; tasks are made by `spawn` (the worker's TaskGroup)."""

    def __init__(
        self,
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]],
        on_done: Callable[[LegStream], None] | None = None,
    ) -> None:
        self._spawn = spawn
        self._on_done = on_done  # called once a stream's task is done (its events all handed on)
        self._active: dict[tuple[str, Leg], LegStream] = {}
        self._streams: dict[str, list[_Running]] = {}  # the streams of each open call
        self._closing: dict[asyncio.Task[None], tuple[str, list[_Running]]] = {}  # closer: call, streams
        self._failed: set[tuple[str, Leg]] = set()

    def active(self, call_id: str, leg: Leg) -> LegStream | None:
        """The stream taking this leg's audio now, if any."""
        return self._active.get((call_id, leg))

    async def stream_for(self, frame: AudioFrame, new: Callable[[AudioFrame], LegStream]) -> LegStream | None:
        """The stream to take `frame`: the active one if it can, else `new(frame)`, opened; None when
        the leg was given up on. A stream that cannot take it (ended, or the frame lies past a gap
        too long for it) is retired; one that failed for good fails its leg."""
        key = (frame.call_id, frame.leg)
        stream = self._active.get(key)
        if stream is not None and (stream.ended or not stream.accepts(frame)):
            if stream.error is not None and not stream.error.retryable:
                self._failed.add(key)  # a new session would fail the same way
            await self.retire(*key)
            stream = None
        if key in self._failed:
            return None
        return stream or self.open(new(frame))

    def open(self, stream: LegStream) -> LegStream:
        """Run `stream` in a task of its own; it takes its leg's audio from now on."""
        task = self._spawn(stream.run(), f"transcribe-leg-{stream.call_id}-{stream.leg}")
        if self._on_done is not None:
            on_done = self._on_done
            task.add_done_callback(lambda _: on_done(stream))
        self._active[(stream.call_id, stream.leg)] = stream
        self._streams.setdefault(stream.call_id, []).append((stream, task))
        return stream

    def detach(self, call_id: str, leg: Leg) -> LegStream | None:
        """The leg's active stream takes no more audio (it keeps running); returns it."""
        return self._active.pop((call_id, leg), None)

    async def retire(self, call_id: str, leg: Leg) -> None:
        """Detach the leg's stream and end its input: it runs on until its finals are out."""
        stream = self.detach(call_id, leg)
        if stream is not None:
            await stream.end_input()

    def retire_idle(self, now: float, idle_s: float) -> list[LegStream]:
        """Retire the streams without audio for `idle_s` by monotonic time `now`, each in a task."""
        idle = [stream for stream in self._active.values() if now - stream.last_audio_at >= idle_s]
        for stream in idle:
            log.info("idle leg finalised", extra={"call_id": stream.call_id, "leg": stream.leg})
            del self._active[(stream.call_id, stream.leg)]
            self._spawn(stream.end_input(), f"transcribe-idle-{stream.call_id}-{stream.leg}")
        return idle

    async def retire_idle_every(self, idle_s: float, tick_s: float) -> None:
        """Every `tick_s` until cancelled, retire the streams without audio for `idle_s`."""
        while True:
            await asyncio.sleep(tick_s)
            self.retire_idle(time.monotonic(), idle_s)

    def fail(self, call_id: str, leg: Leg) -> bool:
        """Give up on the leg until its call ends; False when it was given up on already."""
        if (call_id, leg) in self._failed:
            return False
        self._failed.add((call_id, leg))
        return True

    def failed(self, call_id: str, leg: Leg) -> bool:
        return (call_id, leg) in self._failed

    def close(self, call_id: str, then: Callable[[], Awaitable[None]]) -> None:
        """End the call's legs: at once they take no audio; in a task of its own, their input is
        ended, their finals awaited, then `then()` runs. Cancelling that task cancels them too."""
        self._detach_call(call_id)
        streams = self._streams.pop(call_id, [])
        closer = self._spawn(self._close(streams, then), f"transcribe-close-{call_id}")
        self._closing[closer] = (call_id, streams)
        closer.add_done_callback(self._closed)

    @staticmethod
    async def _close(streams: list[_Running], then: Callable[[], Awaitable[None]]) -> None:
        for stream, _ in streams:
            await stream.end_input()
        for _, task in streams:
            await task
        await then()

    def _closed(self, closer: asyncio.Task[None]) -> None:
        _, streams = self._closing.pop(closer, ("", []))
        if closer.cancelled():
            for _, task in streams:  # cancelled before or while waiting for them: none outlives it
                task.cancel()

    def drop(self, call_id: str) -> None:
        """Forget the call without finishing it: cancel its streams and its closing."""
        self._detach_call(call_id)
        for _, task in self._streams.pop(call_id, []):
            task.cancel()
        for closer, (closing_id, _) in self._closing.items():
            if closing_id == call_id:
                closer.cancel()

    def _detach_call(self, call_id: str) -> None:
        for leg in LEGS:
            self._active.pop((call_id, leg), None)
            self._failed.discard((call_id, leg))

    async def finish_all(self, timeout_s: float) -> int:
        """On a planned stop: end the input of every open call's streams and give them and the
        calls being closed up to `timeout_s` to emit their finals; returns the streams ended. The
        calls stay open: whoever reads them next resumes after these finals (resume.py)."""
        self._active.clear()
        running = [r for rs in self._streams.values() for r in rs]
        tasks = [task for _, task in running] + list(self._closing)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                for stream, _ in running:
                    await stream.end_input()
                if tasks:
                    await asyncio.wait(tasks)
        return len(running)

    async def drain(self, timeout_s: float) -> None:
        """Give the calls being closed up to `timeout_s` to emit their finals."""
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=timeout_s)

    def cancel_all(self) -> None:
        """Cancel every closing and every stream (on shutdown)."""
        for task in [*self._closing, *(t for s in self._streams.values() for _, t in s)]:
            task.cancel()

    def __len__(self) -> int:
        """Calls with streams or a closing in progress."""
        return len(self._streams.keys() | {call_id for call_id, _ in self._closing.values()})
