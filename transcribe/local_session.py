"""The embedded CPU engine as a SpeechSession: Silero VAD + turn segmenter + Whisper tiny.en.

Two tasks per session: `process` runs the VAD and the segmenter and submits decode jobs to the
process-wide DecodeScheduler (which batches the decodes of all sessions); `emit` awaits the
results in submission order and emits events. Finals are never dropped; a partial waiting to be
decoded is replaced by a newer one. A turn is decoded as soon as its end is known (early_final.py),
so most finals are ready when the segmenter confirms the end.

A turn's final is one decode of the whole turn (up to the segmenter's max_turn_ms, 28 s: the
engine decodes a clip over 10 s in Whisper's 30 s window). Its partials decode at most
`partial_window_ms` of the turn's end (the engine's cheap 10 s window): past that, the partial's
text is the text of the earlier partials' segments (Whisper's timestamps) that end before the
window, then the window's own decode. A turn past partial_window_ms gets no early decode at its
pauses (each would cost a 30 s-window decode): its final is decoded once, when the turn ends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from transcribe.audio_ring import AudioRing
from transcribe.decode_scheduler import DecodeScheduler, shared_scheduler
from transcribe.early_final import EarlyFinal
from transcribe.segmenter import Segmenter, SegmenterConfig, TurnEnded, TurnStarted
from transcribe.session import EngineFailure, FinalText, PartialText, SessionError
from transcribe.session_base import END, QueuedSession
from transcribe.vad import VadStream
from transcribe.whisper_engine import (
    LONG_WINDOW_SAMPLES,
    SAMPLE_RATE_HZ,
    WINDOW_SAMPLES,
    Transcription,
    WhisperEngine,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalSessionConfig:
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    partial_interval_ms: int = 1_000  # audio of an open turn between two partial requests
    partial_window_ms: int = 9_500  # a partial decodes at most this much of its turn's end
    first_partial_ms: int = 250  # speech (from the onset) before a turn's first partial request
    # A turn with no partial text yet (its first clip may hold no whole word) asks again as soon
    # as its last decode is back and this much newer audio exists; its partials go before other
    # turns' revisions in the scheduler's queue.
    untexted_interval_ms: int = 100
    max_queued_chunks: int = 50  # send_audio waits beyond this (50 frames of 20 ms = 1 s)
    max_pending_finals: int = 4  # turns ended but not yet decoded; processing waits beyond this
    inline_vad_samples: int = 2_048  # VAD on fewer samples runs on the loop: cheaper than a thread hop
    early_final: bool = True  # decode a turn once post_roll_ms of silence fixes its audio
    max_batch_samples: int = 16_000  # audio taken from the input queue per VAD step
    events_queue_size: int = 64
    language: str | None = None  # the call's language (Whisper's code); None: the engine's default
    # Two-pass (the scheduler has a final engine): a turn's early decode, which becomes its final,
    # goes to the final engine too; other partials stay on the fast one.
    two_pass: bool = False


@dataclass(frozen=True, slots=True)
class _Job:
    kind: Literal["partial", "final"]
    start_sample: int
    end_sample: int
    result: asyncio.Future[Transcription | None]  # None: a newer partial replaced this one
    words_from: int | None = None  # a turn next to a cut inside speech: keep the words whose
    words_until: int | None = None  # middle lies in [words_from, words_until) (sample positions)
    clip_start: int | None = None  # first sample decoded, when not start_sample (a long turn's partial)
    prefix: str = ""  # a long turn's partial: text of the turn before clip_start
    grown_to: list[int] = field(default_factory=list)  # end_sample once the decode grew the clip

    @property
    def decoded_end(self) -> int:
        return self.grown_to[-1] if self.grown_to else self.end_sample


MAX_TURN_MS = LONG_WINDOW_SAMPLES * 1000 // SAMPLE_RATE_HZ - 500  # a final is one decode: it must fit


def _ms(samples: int) -> int:
    return samples * 1000 // SAMPLE_RATE_HZ


class LocalSession(QueuedSession):
    """One leg's recognizer on the embedded engine. Use as `async with`; its two tasks are started then."""

    def __init__(
        self,
        engine: WhisperEngine,
        config: LocalSessionConfig | None = None,
        *,
        vad: VadStream | None = None,
        scheduler: DecodeScheduler | None = None,
    ) -> None:
        config = config or LocalSessionConfig()
        if config.segmenter.max_turn_ms > MAX_TURN_MS:
            raise ValueError(f"max_turn_ms must fit the engine's 30 s window (at most {MAX_TURN_MS})")
        super().__init__(
            max_queued_chunks=config.max_queued_chunks, events_queue_size=config.events_queue_size
        )
        self.config = config
        self._scheduler = scheduler or shared_scheduler(engine)
        self._id = self._scheduler.new_session_id()
        self._vad = vad or VadStream()
        self._segmenter = Segmenter(self.config.segmenter)
        self._early = EarlyFinal(self.config.segmenter)
        self._early_job: _Job | None = None  # the last early decode, while it is the newest partial
        self._ring = AudioRing()
        self._jobs: deque[_Job] = deque()  # submitted, not yet emitted, in submission order
        self._pending_finals = 0
        self._publishing: _Job | None = None
        self._changed = asyncio.Condition()
        self._processing_done = False
        self._busy = 0  # chunks taken from the input queue and not yet segmented
        self._last_partial_at = 0
        self._last_grown: _Job | None = None  # the latest partial whose clip may grow as its decode starts
        self._revisions: dict[int, int] = {}  # turn start -> partials emitted; popped by the final
        self._onsets: dict[int, int] = {}  # turn start -> reported start (speech onset); popped by the final
        self._words_from: dict[int, int] = {}  # turn start -> words_from of a turn that follows a cut
        # A long turn's partials: turn start -> (first sample of the partial window, text before it),
        # and the segments (absolute start, end, text) of its latest decoded partial.
        self._partial_tail: dict[int, tuple[int, str]] = {}
        self._partial_segments: dict[int, list[tuple[int, int, str]]] = {}

    def _start(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self._guard(self._process()), name="local-session-process"),
            asyncio.create_task(self._guard(self._emit()), name="local-session-emit"),
        ]

    async def aclose(self) -> None:
        await super().aclose()
        self._scheduler.forget(self._id)  # and with it this session's decodes still waiting

    async def wait_idle(self) -> None:
        """Wait until all audio sent so far is segmented and decoded (tests pace by this)."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._input.empty() and self._busy == 0 and not self._jobs and not self._publishing
            )

    # -- tasks ---------------------------------------------------------------------------------

    async def _guard(self, work: Coroutine[None, None, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("speech session failed")
            await self._events.put(SessionError(EngineFailure.code, retryable=False))
            await self._events.put(END)

    async def _process(self) -> None:
        while True:
            chunks = [await self._input.get()]
            size = len(chunks[0]) // 2 if isinstance(chunks[0], bytes) else 0
            while chunks[-1] is not END and size < self.config.max_batch_samples and not self._input.empty():
                chunks.append(self._input.get_nowait())
                size += len(chunks[-1]) // 2 if isinstance(chunks[-1], bytes) else 0
            await self._set_busy(+1)
            ended = chunks[-1] is END
            data = b"".join(c for c in chunks if isinstance(c, bytes))
            if data:
                samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
                self._ring.append(samples)
                if len(samples) + self._vad.pending_samples <= self.config.inline_vad_samples:
                    probabilities = self._vad.process(samples)
                else:
                    probabilities = await asyncio.to_thread(self._vad.process, samples)
                for probability in probabilities:
                    position, size = self._segmenter.position, self._segmenter.config.window_samples
                    window = self._ring.slice(position, position + size)
                    energy = float(np.sqrt(np.mean(window * window)))  # where to cut a too-long turn
                    await self._on_events(self._segmenter.push(probability, energy))
                    await self._maybe_request_partial(probability)
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
                    # The first partial comes first_partial_ms after the onset, the next ones every interval.
                    first = self.config.segmenter.samples(self.config.first_partial_ms)
                    interval = self.config.segmenter.samples(self.config.untexted_interval_ms)
                    self._last_partial_at = event.onset + first - interval
                    self._onsets[start] = event.onset
                    if event.words_from is not None:
                        self._words_from[start] = event.words_from
                case TurnEnded(start_sample=start, end_sample=end, words_until=until):
                    words_from = self._words_from.pop(start, None)
                    async with self._changed:
                        await self._changed.wait_for(self._room_for_final)
                        if words_from is not None or until is not None:
                            # Next to a cut inside speech: split the overlap by word timestamps.
                            self._submit("final", start, end, words=(words_from, until))
                        elif not self._promote_early(start, end):
                            # The scheduler drops this session's waiting partial: the final supersedes it.
                            self._submit("final", start, end)

    def _room_for_final(self) -> bool:
        return self._pending_finals < self.config.max_pending_finals

    async def _maybe_request_partial(self, probability: float) -> None:
        start = self._segmenter.turn_start
        position = self._segmenter.position
        early = self._early.push(probability, start, position) if self.config.early_final else None
        limit = self.config.segmenter.samples(self.config.partial_window_ms)
        if early and early[1] - early[0] > limit:
            # A turn past the short window: its final is one 30 s-window decode (~6x the encoder
            # cost of 10 s), decoded once at the turn's end, not at every pause of a long turn.
            early = None
        untexted = start is not None and not self._revisions.get(start)
        interval = self.config.segmenter.samples(
            self.config.untexted_interval_ms if untexted else self.config.partial_interval_ms
        )
        # Counted from the newest audio a partial covers: one that waited for the decoder grew to
        # the audio of its decode's start, so under load partials come less often, each fresh.
        since = max(self._last_partial_at, self._last_grown.decoded_end if self._last_grown else 0)
        if start is None or (early is None and position - since < interval):
            return
        last = self._last_grown
        if (
            untexted
            and early is None
            and last is not None
            and last.start_sample == start
            and not last.result.done()
        ):
            return  # the turn's last decode may still bring its first text: no second one behind it
        if (
            early is None
            and self._early_job is not None
            and probability < self.config.segmenter.end_threshold
        ):
            return  # a pause after speech: the early decode already covers the turn's words
        self._last_partial_at = position
        async with self._changed:
            if early:
                job = self._submit("partial", *early, final_pass=True, urgent=True)  # likely the final
            else:
                clip_start, prefix = self._partial_window(start, position)
                job = self._submit(
                    "partial",
                    start,
                    position,
                    clip_start=clip_start,
                    prefix=prefix,
                    urgent=untexted,
                    grow=True,
                )
            self._early_job = job if early else None
            self._last_grown = None if early else job

    def _partial_window(self, start: int, position: int) -> tuple[int, str]:
        """Where a partial of the turn at `start` begins, and the turn's text before that.

        Within partial_window_ms of the turn's start: the whole turn. Past it, the window starts at
        the first end of an earlier partial's segment (a pause, by Whisper's timestamps) that
        leaves it no longer than partial_window_ms, else exactly that long; the segments ending
        by then are the text before it.
        """
        limit = self.config.segmenter.samples(self.config.partial_window_ms)
        clip_start, prefix = self._partial_tail.get(start, (start, ""))
        if position - clip_start <= limit:
            return clip_start, prefix
        lo = position - limit
        segments = [s for s in self._partial_segments.get(start, []) if s[0] >= clip_start]
        ends = [end for _, end, _ in segments if lo <= end < position]
        boundary = min(ends) if ends else lo
        kept = " ".join(text for _, end, text in segments if end <= boundary and text)
        prefix = f"{prefix} {kept}".strip()
        self._partial_tail[start] = (boundary, prefix)
        self._partial_segments[start] = [s for s in segments if s[1] > boundary]
        return boundary, prefix

    def _submit(
        self,
        kind: Literal["partial", "final"],
        start: int,
        end: int,
        *,
        words: tuple[int | None, int | None] | None = None,
        final_pass: bool = False,
        clip_start: int | None = None,
        prefix: str = "",
        urgent: bool = False,
        grow: bool = False,
    ) -> _Job:
        """Hand a clip to the scheduler (caller holds `_changed`); latest partial wins there."""
        audio = self._ring.slice(start if clip_start is None else clip_start, end)
        options: dict[str, Any] = {"language": self.config.language} if self.config.language else {}
        if self.config.two_pass and final_pass:
            options["final_pass"] = True
        if urgent:
            options["urgent"] = True
        grown_to: list[int] = []
        if grow:
            options["extend"] = functools.partial(
                self._grow, end, grown_to, (clip_start or start) + WINDOW_SAMPLES
            )
        if words is None:
            future = self._scheduler.submit(self._id, kind, audio, **options)
        else:  # word timestamps cost an alignment pass: asked for only next to a cut in speech
            future = self._scheduler.submit(self._id, kind, audio, words=True, **options)
        job = _Job(kind, start, end, future, *(words or (None, None)), clip_start, prefix, grown_to)
        self._jobs.append(job)
        self._pending_finals += kind == "final"
        self._changed.notify_all()
        return job

    def _grow(self, end: int, grown_to: list[int], limit: int, audio: np.ndarray) -> np.ndarray:
        """On the decode worker, as a partial's decode starts: its clip and the audio the VAD has
        seen since, up to `limit` (the engine's 10 s window), so a partial that waited is fresh."""
        longer, new_end = self._ring.extend(audio, end, min(limit, self._segmenter.position))
        grown_to.append(new_end)
        return longer

    def _promote_early(self, start: int, end: int) -> bool:
        """Use the early decode of exactly this turn as its final (caller holds `_changed`)."""
        job, self._early_job = self._early_job, None
        if (
            job is None
            or not self._early.matches(start, end)
            or (job.start_sample, job.end_sample) != (start, end)
        ):
            return False
        if job.result.done() and (
            job.result.cancelled() or job.result.exception() or not job.result.result()
        ):
            return False  # failed: decode the final afresh
        self._scheduler.promote(self._id)  # if still waiting: first in line, and no longer replaceable
        final = _Job("final", start, end, job.result)
        if job in self._jobs:  # not published yet: publish it as the final instead of a partial
            self._jobs[self._jobs.index(job)] = final
        else:
            self._jobs.append(final)
        self._pending_finals += 1
        self._changed.notify_all()
        return True

    async def _set_busy(self, delta: int) -> None:
        async with self._changed:
            self._busy += delta
            self._changed.notify_all()

    async def _emit(self) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self._jobs or self._done())
                if not self._jobs:
                    break
                head = self._jobs[0]
            # wait() leaves the future alone when this task is cancelled; forget() cancels it then.
            await asyncio.wait([head.result])
            async with self._changed:
                # Popped only now: an early decode may have been promoted to the final meanwhile.
                job = self._publishing = self._jobs.popleft()
            await self._publish(job)
            async with self._changed:
                self._publishing = None
                self._pending_finals -= job.kind == "final"
                self._changed.notify_all()
        await self._events.put(END)

    def _done(self) -> bool:
        return self._processing_done and not self._jobs and self._busy == 0 and not self._publishing

    async def _publish(self, job: _Job) -> None:
        if job.result.cancelled() or job.result.exception() is not None:
            log.error("decode failed", extra={"job": job.kind})
            if job.kind == "final":
                await self._events.put(SessionError(EngineFailure.code, retryable=True))
            return
        result = job.result.result()
        if result is None:  # superseded by a newer partial
            return
        if job.words_from is not None or job.words_until is not None:
            result = result.keep_words(
                None if job.words_from is None else (job.words_from - job.start_sample) / SAMPLE_RATE_HZ,
                None if job.words_until is None else (job.words_until - job.start_sample) / SAMPLE_RATE_HZ,
            )
        onset = self._onsets.get(job.start_sample, job.start_sample)
        start_ms, end_ms = _ms(onset), _ms(job.words_until or job.decoded_end)
        if job.kind == "partial":
            origin = job.start_sample if job.clip_start is None else job.clip_start
            if job.start_sample in self._onsets:  # the turn is still open: later partials build on these
                self._partial_segments[job.start_sample] = [
                    (origin + int(s.start_s * SAMPLE_RATE_HZ), origin + int(s.end_s * SAMPLE_RATE_HZ), s.text)
                    for s in result.segments
                    # closed by a timestamp (an unclosed last segment ends at the clip's end)
                    if origin + int(s.end_s * SAMPLE_RATE_HZ) < job.decoded_end - SAMPLE_RATE_HZ // 10
                ]
            text = f"{job.prefix} {result.text}".strip()
            if text:
                revision = self._revisions.get(job.start_sample, 0)
                self._revisions[job.start_sample] = revision + 1
                await self._events.put(PartialText(start_ms, end_ms, text, revision))
            return
        self._onsets.pop(job.start_sample, None)
        self._partial_tail.pop(job.start_sample, None)
        self._partial_segments.pop(job.start_sample, None)
        # An empty final is only worth sending when it has partials to replace.
        if result.text or self._revisions.pop(job.start_sample, 0):
            await self._events.put(FinalText(start_ms, end_ms, result.text, result.confidence))
