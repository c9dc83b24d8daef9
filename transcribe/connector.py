"""The connection seam of a realtime session: how it reaches a `/v1/realtime` server.

A WebSocket straight to vLLM or `callscope transcribe serve` (realtime_client.py), or vLLM behind
an Amazon SageMaker endpoint with bidirectional streaming (sagemaker_transport.py). Both speak the
same typed events, so VllmSession runs unchanged over either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from transcribe.realtime_client import Endpoint, RealtimeConnection
from transcribe.realtime_protocol import ClientEvent, ServerEvent
from transcribe.sagemaker_stream import SageMakerEndpoint, StreamOpener
from transcribe.sagemaker_transport import SageMakerConnection


class Connection(Protocol):
    """An open connection whose model was announced; failures raise SpeechError."""

    session_id: str

    async def send(self, event: ClientEvent) -> None: ...

    async def receive(self) -> ServerEvent: ...

    async def close(self) -> None: ...


Connect = Callable[[], Awaitable[Connection]]
"""Opens a new connection; called again for each reconnect."""


def websocket(endpoint: Endpoint) -> Connect:
    async def connect() -> Connection:
        return await RealtimeConnection.open(endpoint)

    return connect


def sagemaker(endpoint: SageMakerEndpoint, opener: StreamOpener | None = None) -> Connect:
    """`opener` defaults to the HTTP/2 runtime client, resolved on each open (see sagemaker_transport)."""

    async def connect() -> Connection:
        return await SageMakerConnection.open(endpoint, opener=opener)

    return connect
