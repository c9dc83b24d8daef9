"""The embedded CPU engine as a SpeechSession: Silero VAD + turn segmenter + Whisper tiny.en.

Two tasks per session under one TaskGroup: `process` runs the VAD (in a thread) and the
segmenter, and queues decode jobs; `decode` runs Whisper (in the engine's threads) and emits
events. Finals are never dropped; a partial waiting to be decoded is replaced by a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

import numpy as np

from transcribe.audio_ring import AudioRing
from transcribe.segmenter import Segmenter, SegmenterConfig, TurnEnded, TurnStarted
from transcribe.session import (
    EngineFailure,
    FinalText,
    InvalidAudio,
    PartialText,
    SessionClosed,
    SessionError,
    SessionEvent,
)
from transcribe.vad import VadStream
from transcribe.whisper_engine import SAMPLE_RATE_HZ, WhisperEngine

log = logging.getLogger(__name__)

_END = object()


@dataclass(frozen=True)
class LocalSessionConfig:
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    partial_interval_ms: int = 1_000  # audio of an open turn between two partial requests
    max_queued_chunks: int = 50  # send_audio waits beyond this (50 frames of 20 ms = 1 s)
    max_pending_finals: int = 4  # turns ended but not yet decoded; processing waits beyond this
    max_batch_samples: int = 16_000  # audio taken from the input queue per VAD step
    events_queue_size: int = 64


@dataclass(frozen=True, slots=True)
class _Job:
    kind: Literal["partial", "final"]
    start_sample: int
    end_sample: int
    audio: np.ndarray


def _ms(samples: int) -> int:
    return samples * 1000 // SAMPLE_RATE_HZ


class LocalSession:
    """One leg's recognizer on the embedded engine. Use as `async with`."""

    def __init__(
        self, engine: WhisperEngine, config: LocalSessionConfig | None = None, *, vad: VadStream | None = None
    ) -> None:
        self._engine = engine
        self.config = config or LocalSessionConfig()
        self._vad = vad or VadStream()
        self._segmenter = Segmenter(self.config.segmenter)
        self._ring = AudioRing()
        self._input: asyncio.Queue[bytes | object] = asyncio.Queue(self.config.max_queued_chunks)
        self._events: asyncio.Queue[SessionEvent | object] = asyncio.Queue(self.config.events_queue_size)
        self._finals: deque[_Job] = deque()
        self._partial: _Job | None = None
        self._changed = asyncio.Condition()
        self._processing_done = False
        self._busy = 0  # chunks taken from the input queue and not yet segmented, or a decode running
        self._last_partial_at = 0
        self._revisions: dict[int, int] = {}  # turn start -> partials emitted; popped by the final
        self._input_ended = False
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    async def __aenter__(self) -> Self:
        # Two tasks owned by this session; aclose() cancels and awaits both.
        self._tasks = [
            asyncio.create_task(self._guard(self._process()), name="local-session-process"),
            asyncio.create_task(self._guard(self._decode()), name="local-session-decode"),
        ]
        self._started = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def send_audio(self, pcm16_16k: bytes) -> None:
        if self._input_ended or not self._started:
            raise SessionClosed()
        if len(pcm16_16k) % 2:
            raise InvalidAudio()
        if pcm16_16k:
            await self._input.put(pcm16_16k)

    async def end_input(self) -> None:
        if self._input_ended:
            return
        self._input_ended = True
        await self._input.put(_END)

    async def events(self) -> AsyncIterator[SessionEvent]:
        while True:
            item = await self._events.get()
            if item is _END:
                return
            assert isinstance(item, PartialText | FinalText | SessionError)
            yield item

    async def aclose(self) -> None:
        """Stop at once: pending audio and decodes are dropped (call end_input first to keep them)."""
        self._input_ended = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        # gather() re-raises if aclose() itself is cancelled; the children's CancelledError is expected.
        await asyncio.gather(*tasks, return_exceptions=True)
        if tasks:
            with contextlib.suppress(asyncio.QueueFull):
                self._events.put_nowait(_END)

    async def wait_idle(self) -> None:
        """Wait until all audio sent so far is segmented and decoded (tests pace by this)."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._input.empty() and self._busy == 0 and not self._finals and self._partial is None
            )

    # -- tasks ---------------------------------------------------------------------------------

    async def _guard(self, work: Coroutine[None, None, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("speech session failed")
            await self._events.put(SessionError(EngineFailure.code, retryable=False))
            await self._events.put(_END)

    async def _process(self) -> None:
        while True:
            chunks = [await self._input.get()]
            size = len(chunks[0]) // 2 if isinstance(chunks[0], bytes) else 0
            while chunks[-1] is not _END and size < self.config.max_batch_samples and not self._input.empty():
                chunks.append(self._input.get_nowait())
                size += len(chunks[-1]) // 2 if isinstance(chunks[-1], bytes) else 0
            await self._set_busy(+1)
            ended = chunks[-1] is _END
            data = b"".join(c for c in chunks if isinstance(c, bytes))
            if data:
                samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
                self._ring.append(samples)
                probabilities = await asyncio.to_thread(self._vad.process, samples)
                for probability in probabilities:
                    await self._on_events(self._segmenter.push(probability))
                    await self._maybe_request_partial()
            if ended:
                await self._on_events(self._segmenter.flush())
            self._ring.trim_before(self._segmenter.retain_from)
            await self._set_busy(-1)
            if ended:
                async with self._changed:
                    self._processing_done = True
                    self._changed.notify_all()
                return

    async def _on_events(self, events: list[TurnStarted | TurnEnded]) -> None:
        for event in events:
            match event:
                case TurnStarted(start_sample=start):
                    self._last_partial_at = start
                case TurnEnded(start_sample=start, end_sample=end):
                    job = _Job("final", start, end, self._ring.slice(start, end))
                    async with self._changed:
                        await self._changed.wait_for(self._room_for_final)
                        self._partial = None  # the final supersedes any partial of this turn
                        self._finals.append(job)
                        self._changed.notify_all()

    def _room_for_final(self) -> bool:
        return len(self._finals) < self.config.max_pending_finals

    async def _maybe_request_partial(self) -> None:
        start = self._segmenter.turn_start
        position = self._segmenter.position
        interval = self.config.segmenter.samples(self.config.partial_interval_ms)
        if start is None or position - self._last_partial_at < interval:
            return
        self._last_partial_at = position
        # Latest wins: a partial not yet picked up by the decoder is simply replaced.
        async with self._changed:
            self._partial = _Job("partial", start, position, self._ring.slice(start, position))
            self._changed.notify_all()

    async def _set_busy(self, delta: int) -> None:
        async with self._changed:
            self._busy += delta
            self._changed.notify_all()

    async def _decode(self) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self._finals or self._partial is not None or self._done()
                )
                if self._done():
                    break
                job = self._finals.popleft() if self._finals else self._partial
                if job is None:
                    continue
                if job.kind == "partial":
                    self._partial = None
                self._busy += 1
                self._changed.notify_all()
            try:
                await self._run_job(job)
            finally:
                await self._set_busy(-1)
        await self._events.put(_END)

    def _done(self) -> bool:
        return self._processing_done and not self._finals and self._busy == 0

    async def _run_job(self, job: _Job) -> None:
        try:
            result = await asyncio.to_thread(self._engine.decode, job.audio)
        except Exception:
            log.exception("decode failed", extra={"job": job.kind})
            if job.kind == "final":
                await self._events.put(SessionError(EngineFailure.code, retryable=True))
            return
        start_ms, end_ms = _ms(job.start_sample), _ms(job.end_sample)
        if job.kind == "partial":
            if result.text:
                revision = self._revisions.get(job.start_sample, 0)
                self._revisions[job.start_sample] = revision + 1
                await self._events.put(PartialText(start_ms, end_ms, result.text, revision))
            return
        # An empty final is only worth sending when it has partials to replace.
        if result.text or self._revisions.pop(job.start_sample, 0):
            await self._events.put(FinalText(start_ms, end_ms, result.text, result.confidence))
