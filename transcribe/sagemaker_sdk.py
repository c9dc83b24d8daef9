"""The DuplexStream seam over `aws-sdk-sagemaker-runtime-http2` 0.12 (Python >= 3.12, `sagemaker-stream`).

Importing this module imports the SDK: sagemaker_transport imports it lazily, so the rest of the
package works without it (the types both use are in sagemaker_stream.py). Written against the
SDK's 0.12.0 API (reference/sagemaker-bidirectional-streaming.md section 3); 0.4.0, which AWS's
samples pin, names the client and config differently.
Not exercised by the test suite: the SDK does not install on Python 3.11 and SageMaker is not
reachable from the test machines.
"""

from __future__ import annotations

from typing import Any

from aws_sdk_sagemaker_runtime_http2.client import AsyncSageMakerRuntimeHTTP2Client
from aws_sdk_sagemaker_runtime_http2.config import AsyncSageMakerRuntimeHTTP2Config
from aws_sdk_sagemaker_runtime_http2.models import (
    InvokeEndpointWithBidirectionalStreamInput,
    RequestPayloadPart,
    RequestStreamEventPayloadPart,
    ResponseStreamEventInternalStreamFailure,
    ResponseStreamEventModelStreamError,
    ResponseStreamEventPayloadPart,
)
from smithy_http.aio.crt import AWSCRTHTTPClient

from transcribe.sagemaker_stream import SageMakerEndpoint, StreamPart


class SdkDuplexStream:
    """One InvokeEndpointWithBidirectionalStream call; the output side is awaited on first receive."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._output: Any = None

    async def send(self, payload: bytes) -> None:
        # UTF8: SageMaker hands it to the container as a text frame, the only kind vLLM reads.
        part = RequestPayloadPart(bytes_=payload, data_type="UTF8")
        await self._stream.input_stream.send(RequestStreamEventPayloadPart(value=part))

    async def receive(self) -> StreamPart:
        if self._output is None:
            _, self._output = await self._stream.await_output()
        event = await self._output.receive()
        match event:
            case None:
                return StreamPart("end")
            case ResponseStreamEventPayloadPart(value=part):
                return StreamPart("payload", payload=part.bytes_ or b"")
            case ResponseStreamEventModelStreamError(value=error):
                return StreamPart("model_error", code=error.error_code)
            case ResponseStreamEventInternalStreamFailure():
                return StreamPart("stream_failure")
            case _:
                return StreamPart("unknown")

    async def close(self) -> None:
        await self._stream.input_stream.close()


async def open_stream(endpoint: SageMakerEndpoint) -> SdkDuplexStream:
    """Open the HTTP/2 stream. The CRT transport is required: the SDK's default aiohttp transport
    cannot stream both ways and fails every call with UnsupportedTransportError."""
    config = await AsyncSageMakerRuntimeHTTP2Config.resolve(
        region=endpoint.region, transport=AWSCRTHTTPClient()
    )
    client = AsyncSageMakerRuntimeHTTP2Client(config=config)
    request = InvokeEndpointWithBidirectionalStreamInput(
        endpoint_name=endpoint.endpoint_name, target_variant=endpoint.target_variant
    )
    return SdkDuplexStream(await client.invoke_endpoint_with_bidirectional_stream(request))
