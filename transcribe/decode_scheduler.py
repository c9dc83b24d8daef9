"""One decode scheduler per process: every session's Whisper decodes, batched across sessions.

Sessions submit clips and await futures; worker threads take whatever is waiting (policy in
decode_queue.py: finals first, latest partial wins, one request per session at a time) and run
it as ONE batched encoder + generate() call. Nothing waits to fill a batch: requests pile up
while the previous batch decodes, so batches grow with load and stay at one when idle.

Measured here (tiny.en int8, 10 s windows, 2 shared cores; curve: python -m bench.engine):
- generate() cost per item falls with the batch (1: ~70 ms, 4: ~25 ms, 8: ~19 ms); the encoder
  does not batch (~30 ms per window) and gets slower per window past 4 windows a call, so batches
  run the encoder in slices of 4 (WhisperConfig.encode_batch_size). A batch of 8 took about half
  the time of 8 single decodes, with the same text and scores (tests check the text).
- Two intra-op threads per decode did not make one decode faster (encoder 29 ms either way).
- Prompting the decoder with the previous partial's tokens (prefix reuse) saved no time (~70 ms
  either way: the decoder's cost is not in the forced tokens), so partials decode from scratch.
- Log-mel of a 10 s window costs ~1.5-4 ms: not worth caching per turn.
- VAD: ~40 us per 20 ms frame inline vs ~80 us through a thread hop, so small chunks run inline
  (LocalSessionConfig.inline_vad_samples); batching Silero across legs would save under 2 % of a
  core at 16 legs: not done.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from transcribe.decode_queue import DecodeQueue, DecodeRequest, Kind
from transcribe.whisper_engine import Transcription, WhisperEngine

log = logging.getLogger(__name__)

_ids = itertools.count()


@dataclass(frozen=True, slots=True)
class _Payload:
    audio: np.ndarray
    future: asyncio.Future[Transcription | None]
    loop: asyncio.AbstractEventLoop
    words: bool = False  # word timestamps wanted (a turn cut inside speech)
    language: str | None = None  # the call's language; None: the engine's configured one
    final_pass: bool = False  # decoded by the final engine (two-pass: a larger model for finals)
    # Called on the worker thread when the request is taken, with `audio`: the clip to decode (a
    # waiting partial grows to the newest audio, so its text is as fresh as the decode allows).
    extend: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(slots=True)
class SchedulerStats:
    batches: int = 0
    decoded: int = 0
    superseded: int = 0
    largest_batch: int = 0


class DecodeScheduler:
    """Batches decode requests of many sessions onto `workers` threads; use from any event loop."""

    def __init__(
        self,
        engine: WhisperEngine,
        *,
        max_batch: int | None = None,
        workers: int | None = None,
        urgent_workers: int | None = None,
        final_engine: WhisperEngine | None = None,
    ):
        """`final_engine`: two-pass decoding, finals (and a turn's early decode, which becomes its
        final) on this larger model, partials on `engine`; None: everything on `engine`.
        `urgent_workers`: threads beside `workers` that take only finals and urgent partials, so
        what is waited on does not queue behind a batch of revisions."""
        self._engine = engine
        self._final_engine = final_engine
        self.max_batch = max(1, max_batch or engine.config.max_batch_size)
        self.workers = max(1, workers or engine.config.num_workers)
        self.urgent_workers = max(
            0, engine.config.urgent_workers if urgent_workers is None else urgent_workers
        )
        self._queue: DecodeQueue[_Payload] = DecodeQueue()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.stats = SchedulerStats()

    def new_session_id(self) -> Hashable:
        return next(_ids)

    def submit(
        self,
        session: Hashable,
        kind: Kind,
        audio: np.ndarray,
        *,
        words: bool = False,
        language: str | None = None,
        final_pass: bool | None = None,
        urgent: bool = False,
        extend: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> asyncio.Future[Transcription | None]:
        """Queue a clip from the loop that awaits it; the future gets the text, or None if a newer partial
        of the session replaced it, or the decode error. `urgent`: a partial that goes before the
        other partials (a turn's first text). `extend`: called on a worker thread as the decode
        starts, with `audio`, returns the clip to decode instead (must be thread-safe)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Transcription | None] = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("decode scheduler closed")
            self._start_workers()
            superseded = self._queue.submit(
                DecodeRequest(
                    session,
                    kind,
                    _Payload(
                        audio,
                        future,
                        loop,
                        words,
                        language,
                        kind == "final" if final_pass is None else final_pass,
                        extend,
                    ),
                    urgent=urgent,
                )
            )
            self.stats.superseded += len(superseded)
            self._cond.notify_all()  # workers differ in what they take: wake them all
        for request in superseded:
            if not request.payload.future.done():
                request.payload.future.set_result(None)
        return future

    def promote(self, session: Hashable) -> None:
        """The session's waiting partial is its next final after all: run it with the finals."""
        with self._cond:
            if self._queue.promote(session):
                self._cond.notify_all()  # a final now: an urgent worker may take it

    def forget(self, session: Hashable) -> None:
        """Drop a closed session's waiting requests (one being decoded finishes unseen)."""
        with self._cond:
            dropped = self._queue.forget(session)
        for request in dropped:
            request.payload.future.cancel()

    def close(self) -> None:
        """Stop the workers after the batch in hand; waiting requests are cancelled."""
        with self._cond:
            self._closed = True
            dropped = self._queue.forget_all()
            self._cond.notify_all()
        for request in dropped:
            with contextlib.suppress(RuntimeError):  # that session's loop has closed
                request.payload.loop.call_soon_threadsafe(request.payload.future.cancel)
        for thread in self._threads:
            thread.join()

    def _start_workers(self) -> None:
        while len(self._threads) < self.workers + self.urgent_workers:
            urgent_only = len(self._threads) >= self.workers
            thread = threading.Thread(
                target=self._run,
                args=(urgent_only,),
                name=f"decode-scheduler-{len(self._threads)}{'-urgent' if urgent_only else ''}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _run(self, urgent_only: bool) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._queue.ready(urgent_only=urgent_only))
                if self._closed:
                    return
                batch = self._queue.take(self.max_batch, urgent_only=urgent_only)
                self.stats.batches += 1
                self.stats.decoded += len(batch)
                self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            try:
                audio = [
                    r.payload.extend(r.payload.audio) if r.payload.extend else r.payload.audio for r in batch
                ]
                results: list[Transcription] | BaseException = self._decode(batch, audio)
            except Exception as exc:  # every request of the batch gets the error
                log.exception("batched decode failed", extra={"batch_size": len(batch)})
                results = exc
            with self._cond:
                self._queue.done([r.session for r in batch])
                self._cond.notify_all()
            for i, request in enumerate(batch):
                outcome = results if isinstance(results, BaseException) else results[i]
                with contextlib.suppress(RuntimeError):  # that session's loop has closed
                    request.payload.loop.call_soon_threadsafe(_resolve, request.payload.future, outcome)

    def _decode(self, batch: list[DecodeRequest[_Payload]], audio: list[np.ndarray]) -> list[Transcription]:
        """One decode_batch per engine the batch needs (two-pass: finals on the final engine)."""
        groups: dict[int, list[int]] = {}
        for i, request in enumerate(batch):
            groups.setdefault(int(bool(self._final_engine and request.payload.final_pass)), []).append(i)
        out: list[Transcription | None] = [None] * len(batch)
        for final, items in sorted(groups.items(), reverse=True):  # finals first: they are waited on
            engine = self._final_engine if final else self._engine
            assert engine is not None
            words = [batch[i].payload.words for i in items]
            languages = [batch[i].payload.language for i in items]
            options: dict[str, Any] = {"words": words} if any(words) else {}
            if any(languages):  # clips of several languages decode together, each told its own
                options["languages"] = languages
            for i, result in zip(
                items, engine.decode_batch([audio[i] for i in items], **options), strict=True
            ):
                out[i] = result
        assert all(r is not None for r in out)
        return out  # type: ignore[return-value]


def _resolve(future: asyncio.Future[Transcription | None], outcome: Transcription | BaseException) -> None:
    if future.done():  # the awaiting session was cancelled
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


@functools.cache
def shared_scheduler(engine: WhisperEngine, final_engine: WhisperEngine | None = None) -> DecodeScheduler:
    """The process-wide scheduler of an engine (and a final engine); threads start with the first request."""
    return DecodeScheduler(engine, final_engine=final_engine)
