"""The seam between the SageMaker connection and the HTTP/2 SDK: the endpoint and the duplex stream.

sagemaker_transport.py speaks the realtime protocol over a DuplexStream; sagemaker_sdk.py is the
one DuplexStream over the real SDK. Both import this module and the transport imports the SDK
module only when a connection opens, so the package has no import cycle and works without the SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class SageMakerEndpoint:
    endpoint_name: str
    region: str
    model: str = "mistralai/Voxtral-Mini-4B-Realtime-2602"  # the served name the container announces
    target_variant: str | None = None
    open_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class StreamPart:
    """One response event of the stream, reduced to what the connection acts on."""

    kind: Literal["payload", "model_error", "stream_failure", "unknown", "end"]
    payload: bytes = b""
    code: str | None = None  # ModelStreamError.ErrorCode; safe to log, the message is not


class DuplexStream(Protocol):
    """The seam around the SDK's DuplexEventStream: send payloads, receive parts, close input."""

    async def send(self, payload: bytes) -> None: ...

    async def receive(self) -> StreamPart: ...

    async def close(self) -> None: ...


class StreamOpener(Protocol):
    async def __call__(self, endpoint: SageMakerEndpoint) -> DuplexStream: ...
