"""Stand-ins on both sides of the SageMaker bridge, for observing what the bridge does.

* `recording_upstream()`: a `/v1/realtime` server that answers like vLLM where the bridge cares
  (session.created first, a binary frame drops the socket without a close frame) and records the
  frame types it received. The bridge is also tested against the real servers.
* `SidecarStream`: what SageMaker's sidecar does, on loopback: each request PayloadPart becomes one
  WebSocket frame to the container and each frame back one response PayloadPart. It lets the
  SageMaker transport run through the real bridge and a real server, without AWS.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import WSMsgType, web

from deploy.sagemaker.bridge import STREAM_PATH
from transcribe.sagemaker_transport import SageMakerEndpoint, StreamOpener, StreamPart


@dataclass
class Recorder:
    frames: list[tuple[str, str]] = field(default_factory=list)  # (TEXT|BINARY, data)
    healthy: bool = True
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_codes: list[int | None] = field(default_factory=list)


RECORDER = web.AppKey("recorder", Recorder)


async def _realtime(request: web.Request) -> web.WebSocketResponse:
    recorder = request.app[RECORDER]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(json.dumps({"type": "session.created", "id": "sess-fake", "created": 0}))
    async for message in ws:
        if message.type is WSMsgType.BINARY:
            recorder.frames.append(("BINARY", message.data.hex()))
            assert request.transport is not None
            request.transport.abort()  # vLLM: KeyError('text') ends the handler, no close frame
            break
        recorder.frames.append(("TEXT", message.data))
        event = json.loads(message.data)
        if event.get("type") == "input_audio_buffer.commit" and event.get("final"):
            await ws.send_str(json.dumps({"type": "transcription.done", "text": "", "usage": None}))
        if event.get("type") == "close_me":
            await ws.close(code=4000)
    recorder.close_codes.append(ws.close_code)
    recorder.closed.set()
    return ws


async def _health(request: web.Request) -> web.Response:
    return web.Response(status=200 if request.app[RECORDER].healthy else 503)


@asynccontextmanager
async def recording_upstream() -> AsyncIterator[tuple[str, Recorder]]:
    """Serve on a free loopback port; yields (base URL, recorder)."""
    app = web.Application()
    recorder = Recorder()
    app[RECORDER] = recorder
    app.router.add_get("/v1/realtime", _realtime)
    app.router.add_get("/health", _health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}", recorder
    finally:
        await runner.cleanup()


class SidecarStream:
    """A DuplexStream over a direct WebSocket to the bridge (UTF8 parts as text frames, as AWS does)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    def opener(cls, http: aiohttp.ClientSession, bridge_url: str) -> StreamOpener:
        async def open_stream(endpoint: SageMakerEndpoint) -> SidecarStream:
            return cls(await http.ws_connect(bridge_url + STREAM_PATH))

        return open_stream

    async def send(self, payload: bytes) -> None:
        await self.ws.send_str(payload.decode("utf-8"))

    async def receive(self) -> StreamPart:
        message = await self.ws.receive()
        match message.type:
            case WSMsgType.TEXT:
                return StreamPart("payload", message.data.encode("utf-8"))
            case WSMsgType.BINARY:
                return StreamPart("payload", message.data)
            case _:
                return StreamPart("end")

    async def close(self) -> None:
        await self.ws.close()
