"""The SageMaker transport speaks vLLM's realtime protocol through the DuplexStream seam.

The real HTTP/2 client (aws-sdk-sagemaker-runtime-http2) needs Python 3.12 and a live endpoint, so
these tests drive the connection through an in-memory stream; the container side (the bridge) is
tested for real in test_sagemaker_bridge.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json

import pytest

from transcribe.realtime_client import ProtocolError
from transcribe.realtime_protocol import (
    AudioAppend,
    Commit,
    ErrorEvent,
    TranscriptionDelta,
    TranscriptionDone,
)
from transcribe.sagemaker_transport import (
    SageMakerClientMissing,
    SageMakerConnection,
    SageMakerEndpoint,
    StreamPart,
    sdk_stream_opener,
)
from transcribe.session import EngineFailure, EngineUnavailable

ENDPOINT = SageMakerEndpoint(endpoint_name="callscope-voxtral", region="us-east-1", model="tiny-voxtral-rt")
CREATED = StreamPart(
    "payload", json.dumps({"type": "session.created", "id": "sess-1", "created": 1}).encode()
)


class FakeStream:
    """An in-memory DuplexStream: records what was sent, replays the parts it was given."""

    def __init__(self, *parts: StreamPart) -> None:
        self.sent: list[dict[str, object]] = []
        self.closed = False
        self._parts: asyncio.Queue[StreamPart] = asyncio.Queue()
        for part in parts:
            self._parts.put_nowait(part)

    async def send(self, payload: bytes) -> None:
        self.sent.append(json.loads(payload.decode("utf-8")))

    async def receive(self) -> StreamPart:
        return await self._parts.get()

    async def close(self) -> None:
        self.closed = True

    def opener(self):
        async def open_stream(endpoint: SageMakerEndpoint) -> FakeStream:
            assert endpoint is ENDPOINT
            return self

        return open_stream


def _payload(event: dict[str, object]) -> StreamPart:
    return StreamPart("payload", json.dumps(event).encode())


async def test_open_announces_the_model_and_takes_the_session_id_from_session_created() -> None:
    stream = FakeStream(CREATED)

    connection = await SageMakerConnection.open(ENDPOINT, opener=stream.opener())

    assert connection.session_id == "sess-1"
    assert stream.sent == [{"type": "session.update", "model": "tiny-voxtral-rt"}]


async def test_each_client_event_is_one_json_payload_part() -> None:
    stream = FakeStream(CREATED)
    connection = await SageMakerConnection.open(ENDPOINT, opener=stream.opener())

    await connection.send(Commit())
    await connection.send(AudioAppend.of(b"\x01\x00\x02\x00"))
    await connection.send(Commit(final=True))

    assert stream.sent[1:] == [
        {"type": "input_audio_buffer.commit", "final": False},
        {"type": "input_audio_buffer.append", "audio": "AQACAA=="},
        {"type": "input_audio_buffer.commit", "final": True},
    ]


async def test_response_payload_parts_become_typed_server_events() -> None:
    stream = FakeStream(
        CREATED,
        _payload({"type": "transcription.delta", "delta": "hel"}),
        _payload({"type": "error", "error": "Invalid audio data", "code": "invalid_audio"}),
        _payload({"type": "transcription.done", "text": "hel", "usage": {"prompt_tokens": 39}}),
    )
    connection = await SageMakerConnection.open(ENDPOINT, opener=stream.opener())

    assert await connection.receive() == TranscriptionDelta("hel")
    assert await connection.receive() == ErrorEvent("Invalid audio data", "invalid_audio")
    done = await connection.receive()
    assert isinstance(done, TranscriptionDone) and done.text == "hel" and done.usage.prompt_tokens == 39


@pytest.mark.parametrize(
    ("part", "error", "retryable"),
    [
        (StreamPart("model_error", code="ModelStreamError"), EngineFailure, True),
        (StreamPart("stream_failure"), EngineUnavailable, True),
        (StreamPart("end"), EngineUnavailable, True),
        (StreamPart("unknown"), ProtocolError, False),
        (StreamPart("payload", b"not json"), ProtocolError, False),
    ],
)
async def test_stream_failures_raise_speech_errors_that_say_whether_to_retry(part, error, retryable) -> None:
    connection = await SageMakerConnection.open(ENDPOINT, opener=FakeStream(CREATED, part).opener())

    with pytest.raises(error) as raised:
        await connection.receive()
    assert raised.value.retryable is retryable


async def test_open_fails_and_closes_the_stream_when_the_first_event_is_not_session_created() -> None:
    stream = FakeStream(_payload({"type": "transcription.delta", "delta": ""}))

    with pytest.raises(ProtocolError):
        await SageMakerConnection.open(ENDPOINT, opener=stream.opener())
    assert stream.closed


class ServiceUnavailableError(Exception):
    """Named like the SDK's HTTP 503 error; classification goes by the service model's error names."""


class InputValidationError(Exception):
    pass


@pytest.mark.parametrize(
    ("raised", "error", "retryable"),
    [
        (ServiceUnavailableError("busy"), EngineUnavailable, True),
        (OSError("connection refused"), EngineUnavailable, True),
        (InputValidationError("no such endpoint"), ProtocolError, False),
    ],
)
async def test_open_classifies_sdk_errors(raised, error, retryable) -> None:
    async def failing_opener(endpoint: SageMakerEndpoint) -> FakeStream:
        raise raised

    with pytest.raises(error) as caught:
        await SageMakerConnection.open(ENDPOINT, opener=failing_opener)
    assert caught.value.retryable is retryable


@pytest.mark.skipif(
    importlib.util.find_spec("aws_sdk_sagemaker_runtime_http2") is not None,
    reason="the SageMaker HTTP/2 client is installed here",
)
def test_missing_http2_client_is_a_clear_non_retryable_error_naming_the_extra() -> None:
    with pytest.raises(SageMakerClientMissing) as missing:
        sdk_stream_opener()

    assert "callscope[sagemaker-stream]" in str(missing.value) and "3.12" in str(missing.value)
    assert missing.value.retryable is False
