"""One WebSocket connection to a `/v1/realtime` server (vLLM, or `callscope transcribe serve`).

Thin I/O: connect, say which model, send typed client events, receive typed server events, and
turn every failure into a SpeechError that says whether a new connection may help.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from transcribe.realtime_protocol import (
    ClientEvent,
    ErrorEvent,
    ProtocolViolation,
    ServerEvent,
    SessionCreated,
    SessionUpdate,
    encode,
    parse_server_event,
)
from transcribe.session import EngineFailure, EngineUnavailable, InvalidAudio, SpeechError

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 16 * 1024 * 1024  # uvicorn's ws_max_size, vLLM's effective per-message cap


class AuthenticationFailed(SpeechError):
    code = "auth_failed"
    retryable = False


class ModelNotFound(SpeechError):
    code = "model_not_found"
    retryable = False


class ProtocolError(SpeechError):
    """The server refused an event this client sent: a bug or a version mismatch, not transient."""

    code = "protocol_error"
    retryable = False


class EngineStalled(SpeechError):
    code = "engine_stalled"
    retryable = True


def error_for(event: ErrorEvent) -> SpeechError:
    """Classify a server `error` event."""
    match event.code:
        case "processing_error":
            return EngineFailure()  # the engine failed this utterance; a new one (or replica) may work
        case "invalid_audio":
            return InvalidAudio()
        case "model_not_found":
            return ModelNotFound()
        case _:
            return ProtocolError()


@dataclass(frozen=True)
class Endpoint:
    url: str  # ws://host:port/v1/realtime
    model: str  # a served model name
    api_key: str | None = None
    open_timeout_s: float = 10.0


class RealtimeConnection:
    """An open connection whose model was announced; use `open()` to get one."""

    def __init__(self, ws: ClientConnection, session_id: str) -> None:
        self._ws = ws
        self.session_id = session_id

    @classmethod
    async def open(cls, endpoint: Endpoint) -> RealtimeConnection:
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else None
        try:
            ws = await connect(
                endpoint.url,
                additional_headers=headers,
                open_timeout=endpoint.open_timeout_s,
                max_size=MAX_FRAME_BYTES,
                ping_interval=20,
                ping_timeout=20,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            log.warning("realtime handshake refused", extra={"status": status})
            if status in (401, 403):
                raise AuthenticationFailed() from None
            if 400 <= status < 500 and status != 429:
                raise ProtocolError() from None
            raise EngineUnavailable() from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            log.info("realtime connect failed", extra={"error": type(exc).__name__})
            raise EngineUnavailable() from None
        connection = cls(ws, "")
        try:
            first = await asyncio.wait_for(connection.receive(), endpoint.open_timeout_s)
            if not isinstance(first, SessionCreated):
                raise ProtocolError()
            connection.session_id = first.id
            # No reply on success; a wrong name comes back later as an error event (model_not_found).
            await connection.send(SessionUpdate(endpoint.model))
        except TimeoutError:
            await connection.close()
            raise EngineUnavailable() from None
        except BaseException:
            await connection.close()
            raise
        return connection

    async def send(self, event: ClientEvent) -> None:
        try:
            await self._ws.send(encode(event))
        except ConnectionClosed:
            raise EngineUnavailable() from None

    async def receive(self) -> ServerEvent:
        try:
            frame = await self._ws.recv()
        except ConnectionClosed:
            raise EngineUnavailable() from None
        try:
            return parse_server_event(frame)
        except ProtocolViolation as exc:
            log.warning("unexpected realtime frame", extra={"code": exc.code})
            raise ProtocolError() from None

    async def close(self) -> None:
        await self._ws.close()
