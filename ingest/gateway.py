"""The telephony gateway: one process serving Twilio, AudioHook and generic WebSocket endpoints.

Wiring only: the protocol rules are in the session state machines (twilio.py, audiohook.py,
generic.py), authentication in routes.py, the bounded Kafka path in sink.py. One handler per
connection reads a message, feeds it to its session and performs the actions in order; while a
write to Kafka waits, the handler does not read, so the client is back-pressured through TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ingest import metrics as m
from ingest.config import GatewayConfig
from ingest.events import AudioFrame
from ingest.protocol import (
    CLOSE_TOO_BIG,
    Accepted,
    Action,
    Drop,
    Emit,
    Finish,
    ProtocolError,
    Reply,
    Session,
)
from ingest.routes import authenticate, new_session, source_for
from ingest.signatures import AuthError, NonceCache
from ingest.sink import BrokerUnavailable, CallWriter
from pipeline.deadletter import DeadLetterSink, DeadLetterSpool, dead_letter
from pipeline.stage import metrics_server

log = logging.getLogger(__name__)


@dataclass
class _Connection:
    """What one handler knows about its connection beyond the protocol session."""

    ws: ServerConnection
    session: Session
    source: str
    metrics: m.SourceMetrics
    received_at: float = 0.0  # wall time of the message being handled
    received_mono: float = 0.0
    writer: CallWriter | None = None
    broker_failed: bool = False
    finish: Finish | None = None
    outcome: str = "disconnected"
    drops: dict[str, int] = field(default_factory=dict)


class Gateway:
    """Serves the WebSocket endpoints; `port` is the bound port once started."""

    def __init__(
        self, config: GatewayConfig, producer: AIOKafkaProducer, dead_letters: DeadLetterSink
    ) -> None:
        self._config = config
        self._producer = producer
        self._dead_letters = dead_letters
        self._nonces = NonceCache()
        self._server: Server | None = None
        self._shutting_down = False
        self.port = 0

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self._config.host,
            self._config.port,
            process_request=self._process_request,
            max_size=self._config.max_message_bytes,
            max_queue=self._config.max_queued_messages,
            compression=None,  # no telephony source negotiates it; it would cost CPU per frame
            server_header="callscope-gateway",
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("gateway listening", extra={"host": self._config.host, "port": self.port})

    async def stop(self) -> None:
        """Stop accepting, close every connection (1001), end their calls, wait for the handlers."""
        self._shutting_down = True
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()

    # --- Upgrade request: route and authenticate before the handshake completes ---

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        source = source_for(request.path)
        if source is None:
            m.REJECTED.labels("none", "unknown_path").inc()
            return connection.respond(404, "unknown path\n")
        headers = {name.lower(): value for name, value in request.headers.raw_items()}
        try:
            authenticate(source, request.path, headers, self._config, self._nonces)
        except AuthError as exc:
            m.REJECTED.labels(source, exc.reason).inc()
            letter = dead_letter(stage="ingest", reason=exc.reason, detail=f"{source}: upgrade refused")
            await self._publish(letter)
            status = 400 if exc.reason == "missing_header" else 401
            return connection.respond(status, "unauthorized\n" if status == 401 else "missing header\n")
        return None

    # --- One connection ---

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        source = source_for(ws.request.path) or "generic"
        headers = {name.lower(): value for name, value in ws.request.headers.raw_items()}
        conn = _Connection(ws, new_session(source, headers, self._config), source, m.for_source(source))
        m.CALLS_ACTIVE.labels(source).inc()
        try:
            await self._serve(conn)
        finally:
            m.CALLS_ACTIVE.labels(source).dec()
            m.CALLS.labels(source, conn.outcome).inc()

    async def _serve(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        grace = asyncio.timeout(None)
        try:
            async with grace:
                async for message in conn.ws:
                    if await self._on_message(conn, message):
                        break
                    if conn.finish is not None and grace.when() is None:
                        grace.reschedule(loop.time() + conn.finish.grace_s)
        except TimeoutError:
            pass  # the client did not answer our closing handshake in time: close it ourselves
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CLOSE_TOO_BIG:
                error = ProtocolError("oversized", f"message over {self._config.max_message_bytes} bytes")
                await self._reject(conn, error, b"")
                await self._perform(conn, conn.session.on_error(error, time.time()))
        if conn.finish is None:
            conn.outcome = "gateway_shutdown" if self._shutting_down else "disconnected"
        await self._perform(conn, conn.session.on_disconnect(conn.outcome, time.time()))
        await self._flush(conn)
        code = conn.finish.code if conn.finish is not None else 1000
        reason = conn.finish.reason if conn.finish is not None else ""
        await self._close(conn.ws, code, reason[:120])

    async def _close(self, ws: ServerConnection, code: int, reason: str) -> None:
        """Close, discarding what the client still sends: a client that ran ahead of a stalled
        broker has messages queued before its close frame, and the handshake needs that frame."""
        closing = asyncio.create_task(ws.close(code, reason), name="gateway-close")
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(self._config.close_wait_s + 1.0):
                async for _ in ws:
                    pass
        await closing

    async def _on_message(self, conn: _Connection, message: str | bytes) -> bool:
        """Handle one message; True when the connection is to close now."""
        conn.received_at, conn.received_mono = time.time(), time.monotonic()
        conn.metrics.messages.inc()
        conn.metrics.bytes.inc(len(message))
        session = conn.session
        try:
            if isinstance(message, str):
                actions = session.on_text(message, conn.received_at)
            else:
                actions = session.on_binary(message, conn.received_at)
        except ProtocolError as error:
            raw = message.encode() if isinstance(message, str) else message
            await self._reject(conn, error, raw)
            actions = session.on_error(error, conn.received_at)
        await self._perform(conn, actions)
        return conn.finish is not None and conn.finish.grace_s <= 0

    async def _perform(self, conn: _Connection, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Emit(record=record):
                    if not await self._emit(conn, record):
                        return  # the broker failed: the error path replaced the rest
                case Reply(message=message):
                    with contextlib.suppress(ConnectionClosed):
                        await conn.ws.send(json.dumps(message, separators=(",", ":")))
                case Accepted():
                    conn.metrics.open_latency.observe(time.monotonic() - conn.received_mono)
                    log.info("call accepted", extra={"source": conn.source, "call_id": conn.session.call_id})
                case Drop(reason=reason):
                    m.FRAMES_DROPPED.labels(conn.source, reason).inc()
                case Finish():
                    if conn.finish is None or action.grace_s <= 0:
                        conn.finish = action
                    if conn.outcome == "disconnected":
                        conn.outcome = "ended" if action.code == 1000 else action.reason or "error"

    async def _emit(self, conn: _Connection, record) -> bool:  # noqa: ANN001 - AudioRecord
        """Write one record; False when the broker has failed for this call."""
        is_frame = isinstance(record, AudioFrame)
        if conn.broker_failed:
            if is_frame:
                m.FRAMES_DROPPED.labels(conn.source, "broker_unavailable").inc()
            return True
        if conn.writer is None:
            conn.writer = CallWriter(
                self._producer,
                self._config.audio_topic,
                record.call_id,
                deadline_s=self._config.broker_deadline_s,
                max_in_flight=self._config.max_in_flight_records,
                on_ack=conn.metrics.delivery.observe,
            )
        try:
            await conn.writer.write(record.to_bytes(), conn.received_at)
        except BrokerUnavailable as exc:
            conn.broker_failed = True
            undelivered = conn.writer.in_flight
            m.FRAMES_DROPPED.labels(conn.source, "broker_unavailable").inc(undelivered + int(is_frame))
            error = ProtocolError("broker_unavailable", f"{exc}; {undelivered} records unacknowledged")
            await self._reject(conn, error, b"")
            conn.outcome = "broker_unavailable"
            await self._perform(conn, conn.session.on_error(error, time.time()))
            return False
        if is_frame:
            conn.metrics.frames.inc()
        return True

    async def _flush(self, conn: _Connection) -> None:
        if conn.writer is None or conn.broker_failed:
            return
        try:
            await conn.writer.flush()
        except BrokerUnavailable as exc:
            conn.outcome = "broker_unavailable"
            m.FRAMES_DROPPED.labels(conn.source, "broker_unavailable").inc(conn.writer.in_flight)
            await self._reject(conn, ProtocolError("broker_unavailable", f"at end of call: {exc}"), b"")

    async def _reject(self, conn: _Connection, error: ProtocolError, raw: bytes) -> None:
        log.warning(
            "protocol error",
            extra={"source": conn.source, "reason": error.reason, "call_id": conn.session.call_id},
        )
        letter = dead_letter(
            stage="ingest",
            reason=error.reason,
            detail=f"{conn.source}: {error.detail}",
            value=raw,
            key=conn.session.call_id,
        )
        await self._publish(letter)

    async def _publish(self, letter) -> None:  # noqa: ANN001 - DeadLetter
        await self._dead_letters.publish(letter)


def make_gateway_producer(config: GatewayConfig) -> AIOKafkaProducer:
    # Not idempotent (Tansu rejects it through aiokafka; downstream ids are deterministic). The
    # request timeout is the deadline: it bounds a blocked send and fails batches, not memory.
    return AIOKafkaProducer(
        bootstrap_servers=config.kafka_bootstrap,
        client_id=config.client_id,
        acks="all",
        linger_ms=config.linger_ms,
        max_batch_size=65_536,
        max_request_size=2_000_000,
        request_timeout_ms=max(1_000, int(config.broker_deadline_s * 1_000)),
    )


@contextlib.asynccontextmanager
async def open_gateway(config: GatewayConfig) -> AsyncIterator[Gateway]:
    """Start the producer and the server; on exit end every call and stop both."""
    producer = make_gateway_producer(config)
    await producer.start()
    try:
        spool = (
            DeadLetterSpool(Path(config.dead_letter_spool), config.dead_letter_spool_max_bytes)
            if config.dead_letter_spool
            else None
        )
        dead_letters = DeadLetterSink.to_topic(
            producer,
            config.deadletter_topic,
            stage="ingest",
            timeout_s=config.dead_letter_timeout_s,
            spool=spool,
        )
        gateway = Gateway(config, producer, dead_letters)
        await gateway.start()
        try:
            yield gateway
        finally:
            await gateway.stop()
    finally:
        await producer.stop()


async def run(config: GatewayConfig, *, stop: asyncio.Event) -> None:
    """Serve until `stop` is set (the CLI sets it on SIGTERM/SIGINT), then end every open call."""
    with metrics_server(config.metrics_host_port(), stage="ingest"):
        async with open_gateway(config):
            await stop.wait()
    log.info("gateway stopped")
