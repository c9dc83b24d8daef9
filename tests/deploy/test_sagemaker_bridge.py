"""The SageMaker bridge: /ping, and /invocations-bidirectional-stream relayed to a /v1/realtime server.

A client plays SageMaker's sidecar: it connects to the bridge on loopback and sends frames the way the
sidecar does (binary unless the caller marked a PayloadPart UTF8). Upstream is, in turn, a recording
stand-in (to see exactly which frames the bridge writes), `callscope transcribe serve` (the real CPU
engine) and the real vLLM server on CPU (the conformance peer, when its venv is installed).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import numpy as np
import pytest

from deploy.sagemaker.bridge import PING_PATH, STREAM_PATH, BridgeConfig, running_bridge
from tests.conformance.peers import Peer
from tests.sagemaker_fakes import SidecarStream, recording_upstream
from tests.speech import librivox_utterances
from transcribe.realtime_protocol import AudioAppend, Commit, TranscriptionDelta, TranscriptionDone
from transcribe.sagemaker_transport import SageMakerConnection, SageMakerEndpoint

DEADLINE_S = 10.0


@asynccontextmanager
async def bridge_to(upstream: str, **config: object) -> AsyncIterator[str]:
    """A bridge on a free loopback port in front of `upstream`; yields its base URL."""
    async with running_bridge(BridgeConfig(upstream=upstream, host="127.0.0.1", port=0, **config)) as (
        host,
        port,
    ):
        yield f"http://{host}:{port}"


async def connect_timed(http: aiohttp.ClientSession, bridge: str) -> aiohttp.ClientWebSocketResponse:
    """Open the stream like SageMaker's sidecar; prints how long the WebSocket accept took."""
    started = time.perf_counter()
    ws = await asyncio.wait_for(http.ws_connect(bridge + STREAM_PATH), DEADLINE_S)
    print(f"bridge accept: {(time.perf_counter() - started) * 1000:.1f} ms (SageMaker allows 250 ms)")
    return ws


async def next_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, object]:
    message = await asyncio.wait_for(ws.receive(), DEADLINE_S)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


def as_binary(event: dict[str, object]) -> bytes:
    """A PayloadPart without DataType=UTF8: the sidecar delivers it as a binary frame."""
    return json.dumps(event).encode("utf-8")


# -- frame handling, observed on a recording upstream ------------------------------------------


async def test_binary_frames_reach_the_upstream_as_text_frames() -> None:
    async with (
        recording_upstream() as (upstream, recorder),
        bridge_to(upstream) as bridge,
        aiohttp.ClientSession() as http,
    ):
        ws = await connect_timed(http, bridge)
        assert (await next_event(ws))["type"] == "session.created"

        await ws.send_bytes(as_binary({"type": "session.update", "model": "m"}))
        await ws.send_str(json.dumps({"type": "input_audio_buffer.commit", "final": True}))

        assert (await next_event(ws))["type"] == "transcription.done"
        assert recorder.frames == [
            ("TEXT", '{"type": "session.update", "model": "m"}'),
            ("TEXT", '{"type": "input_audio_buffer.commit", "final": true}'),
        ]
        await ws.close()


async def test_binary_frame_that_is_not_utf8_gets_an_error_event_and_the_stream_goes_on() -> None:
    async with (
        recording_upstream() as (upstream, recorder),
        bridge_to(upstream) as bridge,
        aiohttp.ClientSession() as http,
    ):
        ws = await connect_timed(http, bridge)
        await next_event(ws)

        await ws.send_bytes(b"\xff\xfe\x00")
        assert await next_event(ws) == {
            "type": "error",
            "error": "binary frame is not UTF-8 JSON",
            "code": "invalid_frame",
        }
        await ws.send_str(json.dumps({"type": "input_audio_buffer.commit", "final": True}))
        assert (await next_event(ws))["type"] == "transcription.done"
        assert [kind for kind, _ in recorder.frames] == ["TEXT"]
        await ws.close()


async def test_client_close_closes_the_upstream_normally() -> None:
    async with (
        recording_upstream() as (upstream, recorder),
        bridge_to(upstream) as bridge,
        aiohttp.ClientSession() as http,
    ):
        ws = await connect_timed(http, bridge)
        await next_event(ws)

        await ws.close()

        await asyncio.wait_for(recorder.closed.wait(), DEADLINE_S)
        assert recorder.close_codes == [1000]


async def test_upstream_close_reaches_the_client_with_the_upstream_close_code() -> None:
    async with (
        recording_upstream() as (upstream, _),
        bridge_to(upstream) as bridge,
        aiohttp.ClientSession() as http,
    ):
        ws = await connect_timed(http, bridge)
        await next_event(ws)

        await ws.send_str(json.dumps({"type": "close_me"}))

        message = await asyncio.wait_for(ws.receive(), DEADLINE_S)
        assert message.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4000


async def test_stream_is_accepted_while_the_upstream_handshake_is_still_pending() -> None:
    held: list[asyncio.StreamWriter] = []
    connected = asyncio.Event()

    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # a busy vLLM: TCP accepted, no HTTP upgrade answer yet
        connected.set()

    server = await asyncio.start_server(never_answers, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with bridge_to(f"http://127.0.0.1:{port}") as bridge, aiohttp.ClientSession() as http:
            ws = await connect_timed(http, bridge)
            await asyncio.wait_for(connected.wait(), DEADLINE_S)

            assert not ws.closed  # accepted although the upstream has not answered
            await ws.close()
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_unreachable_upstream_gets_an_error_event_and_close_code_1013() -> None:
    async with recording_upstream() as (upstream, _):
        pass  # now closed: nothing listens on that port any more
    async with bridge_to(upstream) as bridge, aiohttp.ClientSession() as http:
        ws = await connect_timed(http, bridge)

        assert await next_event(ws) == {
            "type": "error",
            "error": "upstream connection failed",
            "code": "upstream_unavailable",
        }
        message = await asyncio.wait_for(ws.receive(), DEADLINE_S)
        assert message.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1013


async def test_ping_is_200_while_the_upstream_is_healthy_and_503_otherwise() -> None:
    async with (
        recording_upstream() as (upstream, recorder),
        bridge_to(upstream) as bridge,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(bridge + PING_PATH) as healthy, http.post(bridge + PING_PATH) as healthy_post:
            assert (healthy.status, healthy_post.status) == (200, 200)
        recorder.healthy = False
        async with http.get(bridge + PING_PATH) as unhealthy:
            assert unhealthy.status == 503


async def test_stopping_the_bridge_closes_open_streams_with_going_away() -> None:
    async with recording_upstream() as (upstream, recorder), aiohttp.ClientSession() as http:
        async with bridge_to(upstream) as bridge:
            ws = await connect_timed(http, bridge)
            await next_event(ws)

        message = await asyncio.wait_for(ws.receive(), DEADLINE_S)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        await asyncio.wait_for(recorder.closed.wait(), DEADLINE_S)
        assert recorder.close_codes in ([1000], [1001])  # a close frame, not a dropped socket (1006)


# -- in front of the real servers ---------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    name: str
    url: str  # http://127.0.0.1:PORT
    model: str


@pytest.fixture(scope="module", params=["serve", "vllm"])
def upstream(request: pytest.FixtureRequest) -> Upstream:
    """`transcribe serve` (Whisper tiny.en), then the real vLLM server on CPU: the session-wide
    servers of tests/conftest.py, the same ones the conformance suite runs against."""
    peer: Peer = request.getfixturevalue(f"{request.param}_server")
    return Upstream(peer.name, f"http://127.0.0.1:{peer.port}", peer.model)


def speech_pcm(seconds: float) -> bytes:
    """Real speech (LibriVox, 16 kHz), PCM16 little-endian."""
    joined = np.concatenate([u.samples for u in librivox_utterances()])
    return np.resize(joined, int(seconds * 16_000)).astype("<i2").tobytes()


def appends(pcm: bytes, chunk_bytes: int = 8_000) -> list[dict[str, object]]:
    return [
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i : i + chunk_bytes]).decode()}
        for i in range(0, len(pcm), chunk_bytes)
    ]


async def events_until_done(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[str], dict[str, object]]:
    deltas: list[str] = []
    for _ in range(10_000):
        event = await next_event(ws)
        match event["type"]:
            case "transcription.delta":
                deltas.append(str(event["delta"]))
            case "transcription.done":
                return deltas, event
            case _:
                raise AssertionError(f"unexpected event {event}")
    raise AssertionError("no transcription.done")


async def test_ping_answers_200_in_front_of_the_real_server(upstream: Upstream) -> None:
    async with bridge_to(upstream.url) as bridge, aiohttp.ClientSession() as http:
        async with http.get(bridge + PING_PATH) as ping:
            assert ping.status == 200


async def test_binary_and_text_frames_through_the_bridge_transcribe_an_utterance(upstream: Upstream) -> None:
    async with bridge_to(upstream.url) as bridge, aiohttp.ClientSession() as http:
        ws = await connect_timed(http, bridge)
        assert (await next_event(ws))["type"] == "session.created"

        await ws.send_bytes(as_binary({"type": "session.update", "model": upstream.model}))
        await ws.send_str(json.dumps({"type": "input_audio_buffer.commit"}))
        for i, event in enumerate(appends(speech_pcm(3.0))):  # binary and text parts mixed
            await (ws.send_bytes(as_binary(event)) if i % 2 else ws.send_str(json.dumps(event)))
        await ws.send_bytes(as_binary({"type": "input_audio_buffer.commit", "final": True}))
        deltas, done = await events_until_done(ws)

        assert deltas and done["text"] == "".join(deltas) and str(done["text"]).strip()
        await ws.close()


async def test_sagemaker_transport_runs_two_utterances_through_the_bridge(upstream: Upstream) -> None:
    endpoint = SageMakerEndpoint(endpoint_name="local", region="us-east-1", model=upstream.model)
    async with bridge_to(upstream.url) as bridge, aiohttp.ClientSession() as http:
        connection = await SageMakerConnection.open(endpoint, opener=SidecarStream.opener(http, bridge))
        assert connection.session_id.startswith("sess-")
        try:
            for _ in range(2):  # the second commit only after done (vLLM ignores it otherwise)
                await connection.send(Commit())
                pcm = speech_pcm(2.0)
                for i in range(0, len(pcm), 6_400):
                    await connection.send(AudioAppend.of(pcm[i : i + 6_400]))
                await connection.send(Commit(final=True))
                deltas: list[str] = []
                for _ in range(10_000):
                    event = await asyncio.wait_for(connection.receive(), 60)
                    if isinstance(event, TranscriptionDone):
                        break
                    assert isinstance(event, TranscriptionDelta), event
                    deltas.append(event.delta)
                assert event.text == "".join(deltas) and event.text.strip()
        finally:
            await connection.close()


def test_bridge_settings_come_from_flags_or_callscope_bridge_variables() -> None:
    from deploy.sagemaker.bridge import parse_args

    environ = {"CALLSCOPE_BRIDGE_UPSTREAM": "https://vllm.internal:8443", "CALLSCOPE_BRIDGE_PORT": "9090"}
    config = parse_args(["--health-path", "/ping"], environ | {"VLLM_API_KEY": "k"})

    assert (config.port, config.host, config.upstream_api_key) == (9090, "0.0.0.0", "k")
    assert config.realtime_url == "wss://vllm.internal:8443/v1/realtime"
    assert config.health_url == "https://vllm.internal:8443/ping"


def test_the_bridge_image_files_are_enough_to_run_the_bridge(tmp_path) -> None:
    """The SageMaker image copies a few files and installs no callscope (nor aiokafka): they suffice."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for line in (root / "deploy" / "sagemaker" / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] != ["COPY"] or words[-1].startswith("/"):
            continue  # the entrypoint script goes to /usr/local/bin
        for source in words[1:-1]:
            target = tmp_path / words[-1] / Path(source).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / source, target)
    probe = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "sys.modules['aiokafka'] = None\n"
        "import deploy.sagemaker.bridge as bridge\n"
        "import pipeline.logs\n"
        "assert bridge.__file__.startswith(sys.argv[1]), bridge.__file__\n"
        "product = {'ingest', 'transcribe', 'analyze', 'store'}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in product)\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
