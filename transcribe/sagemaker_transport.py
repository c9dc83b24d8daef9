"""vLLM's realtime protocol through an Amazon SageMaker endpoint with bidirectional streaming.

Same surface as `realtime_client.RealtimeConnection` (`open`, `send`, `receive`, `close`,
`session_id`), so a session written against that connection can run over SageMaker instead: each
client event goes out as one UTF8 request PayloadPart, each response PayloadPart is one server event
(the bridge in deploy/sagemaker/ relays them to vLLM's `/v1/realtime`).

The HTTP/2 runtime client `aws-sdk-sagemaker-runtime-http2` needs Python >= 3.12 and is the optional
extra `callscope[sagemaker-stream]`; it is imported only when a connection opens. boto3 cannot do
this call (botocore is HTTP/1.1 only).
"""

from __future__ import annotations

import asyncio
import logging

from transcribe.realtime_client import ProtocolError
from transcribe.realtime_protocol import (
    ClientEvent,
    ProtocolViolation,
    ServerEvent,
    SessionCreated,
    SessionUpdate,
    encode,
    parse_server_event,
)
from transcribe.sagemaker_stream import DuplexStream, SageMakerEndpoint, StreamOpener, StreamPart
from transcribe.session import EngineFailure, EngineUnavailable, SpeechError

log = logging.getLogger(__name__)

SDK_PACKAGE = "aws-sdk-sagemaker-runtime-http2"
INSTALL_HINT = "pip install 'callscope[sagemaker-stream]' (Python 3.12 or newer)"


class SageMakerClientMissing(SpeechError):
    """The HTTP/2 runtime client is not installed (or this Python is older than 3.12)."""

    code = "sagemaker_client_missing"
    retryable = False

    def __init__(self) -> None:
        super().__init__(f"{SDK_PACKAGE} is not installed: {INSTALL_HINT}")


# Operation errors of the service model, by name (their classes exist only where the SDK imports).
_RETRYABLE_UNAVAILABLE = frozenset(
    {"ServiceUnavailableError", "InternalServerError", "InternalStreamFailure"}
)
_ENGINE_FAILURES = frozenset({"ModelError", "ModelStreamError"})


def error_for_sdk_exception(exc: BaseException) -> SpeechError:
    """Classify an exception raised by the SDK when opening or using the stream."""
    name = type(exc).__name__
    if name == "InputValidationError":
        return ProtocolError()  # bad endpoint name/variant or request: a retry sends the same thing
    if name in _ENGINE_FAILURES:
        return EngineFailure()
    return EngineUnavailable()  # throttling, 5xx, network, credentials being refreshed


class SageMakerConnection:
    """An open stream whose model was announced; use `open()` to get one."""

    def __init__(self, stream: DuplexStream, session_id: str = "") -> None:
        self._stream = stream
        self.session_id = session_id

    @classmethod
    async def open(
        cls, endpoint: SageMakerEndpoint, *, opener: StreamOpener | None = None
    ) -> SageMakerConnection:
        open_stream = opener or sdk_stream_opener()
        try:
            async with asyncio.timeout(endpoint.open_timeout_s):
                stream = await open_stream(endpoint)
        except TimeoutError:
            raise EngineUnavailable() from None
        except SpeechError:
            raise
        except Exception as exc:
            log.info("sagemaker stream open failed", extra={"error": type(exc).__name__})
            raise error_for_sdk_exception(exc) from None
        connection = cls(stream)
        try:
            # SageMaker may hold the response headers until request data flows, so announce the
            # model first; the bridge holds it until vLLM's socket is up, and vLLM takes it anytime.
            await connection.send(SessionUpdate(endpoint.model))
            first = await asyncio.wait_for(connection.receive(), endpoint.open_timeout_s)
            if not isinstance(first, SessionCreated):
                raise ProtocolError()
            connection.session_id = first.id
        except TimeoutError:
            await connection.close()
            raise EngineUnavailable() from None
        except BaseException:
            await connection.close()
            raise
        return connection

    async def send(self, event: ClientEvent) -> None:
        try:
            await self._stream.send(encode(event).encode("utf-8"))
        except SpeechError:
            raise
        except Exception as exc:
            raise error_for_sdk_exception(exc) from None

    async def receive(self) -> ServerEvent:
        try:
            part = await self._stream.receive()
        except SpeechError:
            raise
        except Exception as exc:
            raise error_for_sdk_exception(exc) from None
        match part.kind:
            case "payload":
                try:
                    return parse_server_event(part.payload)
                except ProtocolViolation as exc:
                    log.warning("unexpected realtime frame", extra={"code": exc.code})
                    raise ProtocolError() from None
            case "model_error":
                log.warning("sagemaker model stream error", extra={"code": part.code})
                raise EngineFailure()
            case "stream_failure":
                log.warning("sagemaker internal stream failure")
                raise EngineUnavailable()
            case "unknown":
                log.warning("unknown sagemaker stream event")
                raise ProtocolError()
            case "end":
                raise EngineUnavailable()  # the container closed the socket

    async def close(self) -> None:
        try:
            await self._stream.close()
        except Exception as exc:  # closing a broken stream must not hide the error that broke it
            log.debug("sagemaker stream close failed", extra={"error": type(exc).__name__})


def sdk_stream_opener() -> StreamOpener:
    """The real opener over `aws-sdk-sagemaker-runtime-http2`; SageMakerClientMissing if not installed."""
    try:
        from transcribe import sagemaker_sdk
    except ImportError:
        raise SageMakerClientMissing() from None
    return sagemaker_sdk.open_stream


__all__ = [
    "DuplexStream",
    "SageMakerClientMissing",
    "SageMakerConnection",
    "SageMakerEndpoint",
    "StreamOpener",
    "StreamPart",
    "error_for_sdk_exception",
]
