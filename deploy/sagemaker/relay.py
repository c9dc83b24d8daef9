"""One relayed stream: a SageMaker-side WebSocket and its upstream `/v1/realtime` WebSocket.

Client frames go through a bounded queue, so frames that arrive while the upstream handshake is
still running wait there (and a full queue stops reading from SageMaker: backpressure, not growth).
Whichever side ends first stops the other; both sockets are then closed with a meaningful code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

logger = logging.getLogger("callscope.sagemaker.bridge")

# Close codes that must not be sent on the wire (RFC 6455 7.4.1); a peer that vanished maps to 1011.
_RESERVED_CLOSE_CODES = frozenset({1005, 1006, 1015})


def error_event(message: str, code: str) -> str:
    """An error in vLLM's own shape, so clients handle bridge errors like server errors."""
    return json.dumps({"type": "error", "error": message, "code": code})


def close_code_after(peer_code: int | None) -> int:
    """The code to close one side with after the other side closed with `peer_code`."""
    if peer_code is None or peer_code in _RESERVED_CLOSE_CODES:
        return WSCloseCode.INTERNAL_ERROR
    return peer_code


def _stop_each_other(first: asyncio.Task[None], second: asyncio.Task[None]) -> None:
    first.add_done_callback(lambda _: second.cancel())
    second.add_done_callback(lambda _: first.cancel())


class Relay:
    """Relays one accepted client socket to a new upstream connection until either side ends."""

    def __init__(
        self,
        client: web.WebSocketResponse,
        http: aiohttp.ClientSession,
        *,
        upstream_url: str,
        upstream_headers: Mapping[str, str] | None,
        connect_timeout_s: float,
        max_message_bytes: int,
        max_pending_frames: int,
        connection_id: int,
    ) -> None:
        self._client = client
        self._http = http
        self._url = upstream_url
        self._headers = upstream_headers
        self._connect_timeout_s = connect_timeout_s
        self._max_message_bytes = max_message_bytes
        self._pending: asyncio.Queue[str] = asyncio.Queue(maxsize=max_pending_frames)
        self._upstream: aiohttp.ClientWebSocketResponse | None = None
        self._connect_failed = False
        self._id = connection_id

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                reader = tasks.create_task(self._read_client(), name=f"bridge-{self._id}-client")
                link = tasks.create_task(self._link_upstream(), name=f"bridge-{self._id}-upstream")
                _stop_each_other(reader, link)
        finally:
            await self._close_both()

    async def _read_client(self) -> None:
        """Client frames into the queue as text: vLLM drops its session on a binary frame."""
        async for message in self._client:
            match message.type:
                case WSMsgType.TEXT:
                    await self._pending.put(message.data)
                case WSMsgType.BINARY:
                    try:
                        text = message.data.decode("utf-8")
                    except UnicodeDecodeError:
                        await self._client.send_str(
                            error_event("binary frame is not UTF-8 JSON", "invalid_frame")
                        )
                        continue
                    await self._pending.put(text)
                case WSMsgType.ERROR:
                    return

    async def _link_upstream(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                self._upstream = await self._http.ws_connect(
                    self._url, headers=self._headers, max_msg_size=self._max_message_bytes
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning(
                "bridge upstream connect failed", extra={"connection": self._id, "error": type(exc).__name__}
            )
            self._connect_failed = True
            with contextlib.suppress(ConnectionResetError):  # the client may be gone already
                await self._client.send_str(error_event("upstream connection failed", "upstream_unavailable"))
            return
        async with asyncio.TaskGroup() as tasks:
            send = tasks.create_task(self._send_upstream(self._upstream), name=f"bridge-{self._id}-send")
            receive = tasks.create_task(
                self._receive_upstream(self._upstream), name=f"bridge-{self._id}-recv"
            )
            receive.add_done_callback(lambda _: send.cancel())  # the upstream is gone: nothing to send to

    async def _send_upstream(self, upstream: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(ConnectionResetError):  # upstream closed under a send; receive ends too
            while True:
                await upstream.send_str(await self._pending.get())

    async def _receive_upstream(self, upstream: aiohttp.ClientWebSocketResponse) -> None:
        """Upstream frames to the client unchanged (vLLM sends text, which SageMaker marks UTF8)."""
        with contextlib.suppress(ConnectionResetError):  # the client went away under a send
            async for message in upstream:
                match message.type:
                    case WSMsgType.TEXT:
                        await self._client.send_str(message.data)
                    case WSMsgType.BINARY:
                        await self._client.send_bytes(message.data)
                    case WSMsgType.ERROR:
                        return

    async def _close_both(self) -> None:
        upstream = self._upstream
        if upstream is not None:
            await upstream.close(
                code=close_code_after(self._client.close_code) if self._client.closed else 1000
            )
        if self._connect_failed:
            client_code = WSCloseCode.TRY_AGAIN_LATER
        else:
            client_code = close_code_after(upstream.close_code if upstream is not None else None)
        await self._client.close(code=client_code)
        logger.info(
            "bridge stream closed",
            extra={
                "connection": self._id,
                "client_code": self._client.close_code,
                "upstream_code": upstream.close_code if upstream is not None else None,
            },
        )
