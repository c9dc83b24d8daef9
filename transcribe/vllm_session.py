"""A SpeechSession on a `/v1/realtime` server (vLLM on a GPU, or `callscope transcribe serve`).

One utterance per turn: the client-side VAD and segmenter (the same as the embedded engine's)
cut the leg into turns; each turn is one `commit` ... `commit(final)` on one long-lived
connection, and its `transcription.done` is the turn's final. Why per turn and not one long
utterance per leg: silence is never sent, an engine slot (vLLM --max-num-seqs) is held only
while someone speaks, finals need no text-to-time alignment, and a reconnect replays one turn
(README, "Segmentation with vLLM", has the measured latencies).

The audio-loss traps of the protocol are avoided by construction: the next turn's commit waits
for the previous `transcription.done`; `final` is only sent inside a running utterance; audio
that arrives meanwhile is held in a bounded ring and sent after. A dropped connection or a
stalled engine reconnects with exponential backoff and replays the open turn from its start,
so a final is neither missing nor emitted twice. The connection comes from `config.connect`
(connector.py): a WebSocket to the server, or the server behind a SageMaker endpoint. Turn and
utterance bookkeeping is pure, in realtime_turns.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from pipeline.retry import RetryPolicy
from transcribe import metrics
from transcribe.audio_ring import AudioRing
from transcribe.connector import Connect, Connection
from transcribe.engine_health import ENGINE_HEALTH, EngineHealth
from transcribe.realtime_client import EngineStalled, ProtocolError, error_for
from transcribe.realtime_protocol import (
    AudioAppend,
    Commit,
    ErrorEvent,
    ServerEvent,
    SessionCreated,
    SessionUpdate,
    TranscriptionDelta,
    TranscriptionDone,
)
from transcribe.realtime_turns import RATE_HZ, Turn, TurnBook, Utterance, ms
from transcribe.segmenter import Segmenter, SegmenterConfig, TurnEnded, TurnStarted
from transcribe.session import (
    EngineFailure,
    EngineUnavailable,
    FinalText,
    PartialText,
    SessionError,
    SpeechError,
)
from transcribe.session_base import END, QueuedSession
from transcribe.vad import VadStream

log = logging.getLogger(__name__)
# The server is gone or not answering (not: it answered with an error about this utterance).
_CONNECTION_LOST = (EngineUnavailable.code, EngineStalled.code)


@dataclass(frozen=True)
class VllmSessionConfig:
    connect: Connect  # connector.websocket(Endpoint(...)) or connector.sagemaker(SageMakerEndpoint(...))
    # Long turns are cut here (at the current position, so no audio is in two utterances); keep it
    # far below the server's utterance capacity (Voxtral: (max_model_len - 39) x 80 ms).
    max_turn_ms: int = 30_000
    segmenter: SegmenterConfig = field(default_factory=lambda: SegmenterConfig(max_turn_ms=10**9))
    # Reconnects per turn before the leg reports an error.
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(base_delay_s=0.25, max_delay_s=8.0, attempts=5)
    )
    append_ms: int = 100  # audio per input_audio_buffer.append
    max_queued_chunks: int = 50  # send_audio waits beyond this
    max_held_ms: int = 90_000  # audio held for turns not yet final; processing waits beyond this
    idle_close_s: float = 20.0  # no audio this long: an open turn is finalised, the connection closed
    stall_timeout_s: float = 30.0  # audio sent and no server event for this long: reconnect
    events_queue_size: int = 64
    # The call's language: sent on each new connection in a second session.update (with the served
    # model's name) when set; vLLM 0.33 ignores the field, `transcribe serve` decodes in it.
    model: str = ""
    language: str | None = None

    def __post_init__(self) -> None:
        if self.max_held_ms < 2 * self.max_turn_ms:
            raise ValueError("max_held_ms must hold two turns (2 x max_turn_ms)")


class VllmSession(QueuedSession):
    """One leg's recognizer on a realtime server. Use as `async with`; its task is started then."""

    def __init__(
        self, config: VllmSessionConfig, *, vad: VadStream | None = None, health: EngineHealth | None = None
    ) -> None:
        super().__init__(
            max_queued_chunks=config.max_queued_chunks, events_queue_size=config.events_queue_size
        )
        self.config = config
        self._vad = vad or VadStream()
        self._segmenter = Segmenter(config.segmenter)
        self._ring = AudioRing()
        self._book = TurnBook(config.max_turn_ms * RATE_HZ // 1000)
        self._changed = asyncio.Condition()  # guards the ring and the book
        self._processed_all = False  # end_input() was called and every sample before it segmented
        self._sent_mark = 0
        self._conn: Connection | None = None
        self._backlog_s = 0.0
        self._health = health or ENGINE_HEALTH

    def _start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._run(), name="vllm-session")]

    # -- tasks ------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._process(), name="vllm-session-process")
                tg.create_task(self._drive(), name="vllm-session-drive")
        except* SpeechError as group:
            error = group.exceptions[0]
            assert isinstance(error, SpeechError)
            await self._events.put(SessionError(error.code, error.retryable))
        except* Exception:
            log.exception("realtime session failed")
            await self._events.put(SessionError(EngineFailure.code, retryable=False))
        finally:
            self._stopped = True
            self._set_backlog(0)
            while not self._input.empty():  # a feeder blocked on a full queue gets through, then fails
                self._input.get_nowait()
            await self._disconnect()
        await self._events.put(END)

    async def _process(self) -> None:
        """Input -> ring, VAD and turns. Waits (so send_audio waits) while the ring is full."""
        max_held = self.config.max_held_ms * RATE_HZ // 1000
        while True:
            try:
                item = await asyncio.wait_for(self._input.get(), self.config.idle_close_s)
            except TimeoutError:
                # vLLM has no idle timeout: a turn left open would pin an engine slot forever.
                await self._on_turn_events(self._segmenter.flush())
                continue
            if item is END:
                await self._on_turn_events(self._segmenter.flush())
                async with self._changed:
                    self._book.segmented = self._ring.end
                    self._processed_all = True
                    self._changed.notify_all()
                return
            assert isinstance(item, bytes)
            samples = np.frombuffer(item, dtype="<i2").astype(np.float32) / 32768.0
            async with self._changed:
                await self._changed.wait_for(lambda: self._ring.end - self._ring.start < max_held)
                self._ring.append(samples)
            probabilities = await asyncio.to_thread(self._vad.process, samples)
            for probability in probabilities:
                await self._on_turn_events(self._segmenter.push(probability))
                self._book.cut_long_turn(self._segmenter.position)
            async with self._changed:
                self._book.segmented = self._segmenter.position
                self._trim()
                self._changed.notify_all()
            self._update_backlog()

    async def _on_turn_events(self, events: list[TurnStarted | TurnEnded]) -> None:
        if not events:
            return
        async with self._changed:
            for event in events:
                self._book.apply(event)
            self._changed.notify_all()

    def _trim(self) -> None:
        self._ring.trim_before(self._book.keep_from(self._segmenter.retain_from))

    async def _drive(self) -> None:
        """Turns -> utterances, strictly one after another on one connection."""
        while True:
            turn = await self._next_turn()
            if turn is None:
                return
            if self._book.needs_sending(turn):
                await self._transcribe(turn)
            async with self._changed:
                self._book.drop_oldest()
                self._trim()
                self._changed.notify_all()

    async def _next_turn(self) -> Turn | None:
        while True:
            async with self._changed:
                ready = lambda: bool(self._book.turns) or self._processed_all  # noqa: E731
                try:
                    async with asyncio.timeout(self.config.idle_close_s if self._conn else None):
                        await self._changed.wait_for(ready)
                except TimeoutError:
                    pass
                else:
                    return self._book.turns[0] if self._book.turns else None
            log.info("idle realtime connection closed")
            await self._disconnect()

    async def _transcribe(self, turn: Turn) -> None:
        policy = self.config.retry
        retries = 0
        while True:
            try:
                if self._conn is None:
                    self._conn = await self.config.connect()
                    metrics.REALTIME_CONNECTIONS_OPEN.inc()
                    self._health.connected()
                    if self.config.language:
                        await self._conn.send(SessionUpdate(self.config.model, self.config.language))
                await self._utterance(self._conn, turn)
                return
            except SpeechError as exc:
                await self._disconnect()
                if exc.code in _CONNECTION_LOST:
                    self._health.lost(exc.code)
                if not exc.retryable or not policy.allows(retries + 1):
                    raise
                retries += 1
                metrics.REALTIME_RECONNECTS.labels(exc.code).inc()
                log.info("realtime reconnect", extra={"attempt": retries, "code": exc.code})
                await asyncio.sleep(policy.delay_s(retries))

    async def _utterance(self, conn: Connection, turn: Turn) -> None:
        """One turn as one utterance; from its start again after a reconnect (a replay)."""
        start = self._book.first_unsent(turn)
        state = Utterance(sent=start)
        await conn.send(Commit())
        try:
            async with asyncio.TaskGroup() as tg:
                sender = tg.create_task(self._send_turn(conn, turn, state), name="vllm-session-send")
                done = await self._receive_turn(conn, turn, state)
                sender.cancel()
        except* SpeechError as group:
            raise group.exceptions[0] from None
        if not state.final_sent:
            log.warning("utterance ended by the server's length limit", extra={"sent_ms": ms(state.sent)})
        async with self._changed:
            self._book.finish(turn, state)  # the rest of a turn cut by the server becomes a new turn
            self._changed.notify_all()
        text = done.text.strip()
        if text or turn.revision:
            await self._events.put(FinalText(ms(start), ms(turn.end or state.sent), text))

    async def _send_turn(self, conn: Connection, turn: Turn, state: Utterance) -> None:
        chunk = self.config.append_ms * RATE_HZ // 1000
        while True:
            async with self._changed:
                # Whole chunks only (but the last): the same turn is then sent the same way on a replay.
                await self._changed.wait_for(
                    lambda: self._book.limit(turn) >= state.sent + chunk or turn.end is not None
                )
                end = min(self._book.limit(turn), state.sent + chunk)
                audio = self._ring.slice(state.sent, end) if end > state.sent else None
            if audio is not None:
                pcm = (np.clip(audio, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()
                await conn.send(AudioAppend.of(pcm))
                state.sent = end
                state.unanswered_since = state.unanswered_since or time.monotonic()
                self._update_backlog(state.sent)
            elif turn.end is not None:
                await conn.send(Commit(final=True))  # only here: inside the running utterance
                state.final_sent = True
                state.unanswered_since = state.unanswered_since or time.monotonic()
                return

    async def _receive_turn(self, conn: Connection, turn: Turn, state: Utterance) -> TranscriptionDone:
        while True:
            event = await self._receive(conn, state)
            match event:
                case TranscriptionDelta(delta=delta):
                    if state.first_delta:
                        state.first_delta = False
                        metrics.FIRST_DELTA_LATENCY.observe(time.monotonic() - state.committed_at)
                    if (partial := state.add_delta(delta)) is not None:
                        await self._events.put(
                            PartialText(ms(turn.start), ms(state.sent), partial, turn.revision)
                        )
                        turn.revision += 1
                case TranscriptionDone():
                    return event
                case ErrorEvent():
                    log.warning("realtime server error", extra={"code": event.code})
                    raise error_for(event)
                case SessionCreated():
                    raise ProtocolError()

    async def _receive(self, conn: Connection, state: Utterance) -> ServerEvent:
        while True:
            try:
                async with asyncio.timeout(self.config.stall_timeout_s):
                    event = await conn.receive()
            except TimeoutError:
                since = state.unanswered_since
                if since is not None and time.monotonic() - since >= self.config.stall_timeout_s:
                    log.warning("realtime engine stalled")
                    raise EngineStalled() from None
                continue
            state.unanswered_since = None
            return event

    # -- helpers ----------------------------------------------------------------------------

    def _update_backlog(self, sent: int | None = None) -> None:
        if sent is not None:
            self._sent_mark = sent
        pending = self._ring.end - max(self._sent_mark, self._ring.start) if self._book.turns else 0
        self._set_backlog(max(0, pending) / RATE_HZ)

    def _set_backlog(self, seconds: float) -> None:
        metrics.AUDIO_BACKLOG_SECONDS.inc(seconds - self._backlog_s)
        self._backlog_s = seconds

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            metrics.REALTIME_CONNECTIONS_OPEN.dec()
            with contextlib.suppress(Exception):
                await conn.close()
