"""Stand-ins on both sides of the SageMaker bridge, for observing what the bridge does.

* `recording_upstream()`: a `/v1/realtime` server that answers like vLLM where the bridge cares
  (session.created first, a binary frame drops the socket without a close frame) and records the
  frame types it received. The bridge is also tested against the real servers.
* `SidecarStream`: what SageMaker's sidecar does, on loopback: each request PayloadPart becomes one
  WebSocket frame to the container and each frame back one response PayloadPart. It lets the
  SageMaker transport run through the real bridge and a real server, without AWS.
* `RealtimeStreamFake`: the whole far side in memory (SageMaker and vLLM's utterance semantics),
  for unit tests of a session driving the SageMaker transport.
"""

from __future__ import annotations

import asyncio
import base64
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


class RealtimeStreamFake:
    """An in-memory DuplexStream that answers like vLLM behind SageMaker, one per `open`.

    Utterance semantics as vLLM's: a commit starts an utterance unless one runs (then it is
    ignored), each append gives one delta (" w<k>"), `final` ends the utterance with done. A
    `final` with none running is counted in `stray_finals` (vLLM would end the next one empty).
    `drop_after_appends` closes the stream (an "end" part) after that many appends.
    """

    def __init__(self, endpoint: SageMakerEndpoint, drop_after_appends: int | None = None) -> None:
        self.endpoint = endpoint
        self.sent: list[dict[str, object]] = []
        self.utterance_samples: list[int] = []  # audio of each utterance that reached done
        self.stray_finals = 0
        self.closed = False
        self._drop_after = drop_after_appends
        self._appends = 0
        self._running: list[str] | None = None  # deltas of the running utterance
        self._samples = 0
        self._parts: asyncio.Queue[StreamPart] = asyncio.Queue()
        self._reply({"type": "session.created", "id": f"sess-{id(self)}", "created": 0})

    @classmethod
    def opener(cls, opened: list[RealtimeStreamFake], drop_first_after: int | None = None) -> StreamOpener:
        """Opens a new stream per call and appends it to `opened`; only the first one drops."""

        async def open_stream(endpoint: SageMakerEndpoint) -> RealtimeStreamFake:
            opened.append(cls(endpoint, drop_first_after if not opened else None))
            return opened[-1]

        return open_stream

    def _reply(self, event: dict[str, object]) -> None:
        self._parts.put_nowait(StreamPart("payload", json.dumps(event).encode()))

    async def send(self, payload: bytes) -> None:
        event = json.loads(payload.decode("utf-8"))
        self.sent.append(event)
        match event["type"], self._running:
            case "input_audio_buffer.commit", None if event.get("final"):
                self.stray_finals += 1
            case "input_audio_buffer.commit", None:
                self._running, self._samples = [], 0
            case "input_audio_buffer.commit", deltas if event.get("final"):
                self._reply({"type": "transcription.done", "text": "".join(deltas), "usage": None})
                self.utterance_samples.append(self._samples)
                self._running = None
            case "input_audio_buffer.append", deltas if deltas is not None:
                self._samples += len(base64.b64decode(str(event["audio"]))) // 2
                deltas.append(f" w{len(deltas)}")
                self._reply({"type": "transcription.delta", "delta": deltas[-1]})
                self._appends += 1
                if self._appends == self._drop_after:
                    self._parts.put_nowait(StreamPart("end"))

    async def receive(self) -> StreamPart:
        return await self._parts.get()

    async def close(self) -> None:
        self.closed = True
