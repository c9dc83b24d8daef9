"""SageMaker bidirectional-streaming bridge: `/invocations-bidirectional-stream` -> vLLM `/v1/realtime`.

SageMaker's sidecar turns each request PayloadPart into one WebSocket frame to port 8080 (binary unless
the caller set DataType=UTF8) and each frame sent back into one response PayloadPart (UTF8 for text).
vLLM reads text frames only (a binary frame drops its session without a close frame), so binary frames
are decoded as UTF-8 and forwarded as text. The socket is accepted before the upstream connect starts:
SageMaker wants the accept within 250 ms, and a busy vLLM may take longer to answer its handshake.

Imports aiohttp, the standard library and two ground-floor modules (pipeline.stage for signals and
the drain deadline, pipeline.logs), so the container needs no callscope install: its Dockerfile
copies these files only. Run: `python -m deploy.sagemaker.bridge --upstream http://127.0.0.1:8081`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import WSCloseCode, web

from deploy.sagemaker.relay import Relay
from pipeline.stage import run_until_signalled

logger = logging.getLogger("callscope.sagemaker.bridge")

PING_PATH = "/ping"
STREAM_PATH = "/invocations-bidirectional-stream"


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """Where the bridge listens and which realtime server it relays to."""

    upstream: str = "http://127.0.0.1:8081"  # base URL of vLLM (or `callscope transcribe serve`)
    host: str = "0.0.0.0"
    port: int = 8080
    realtime_path: str = "/v1/realtime"
    health_path: str = "/health"
    upstream_api_key: str | None = None  # vLLM --api-key guards /v1 WebSockets with a bearer token
    upstream_connect_timeout_s: float = 30.0
    health_timeout_s: float = 2.0
    # uvicorn's default cap in front of vLLM; aiohttp's own default (4 MiB) would cut big appends.
    max_message_bytes: int = 16 * 1024 * 1024
    # Client frames waiting for the upstream (its handshake, or a slow send); a full queue stops reading.
    max_pending_frames: int = 32
    # After SIGTERM (SageMaker's stop) open streams are closed with 1001; cancelled after this long.
    drain_deadline_s: float = 5.0

    @property
    def realtime_url(self) -> str:
        base = self.upstream.rstrip("/")
        scheme, sep, rest = base.partition("://")
        ws_scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        return f"{ws_scheme}{sep}{rest}{self.realtime_path}"

    @property
    def health_url(self) -> str:
        return self.upstream.rstrip("/") + self.health_path


_CONFIG = web.AppKey("config", BridgeConfig)
_HTTP = web.AppKey("http", aiohttp.ClientSession)
_OPEN = web.AppKey("open", set)  # accepted client sockets, closed with 1001 on shutdown
_IDS = web.AppKey("ids", itertools.count)


async def _ping(request: web.Request) -> web.Response:
    """200 while the upstream's health check answers 200, else 503 (SageMaker then stops routing)."""
    config = request.app[_CONFIG]
    try:
        async with request.app[_HTTP].get(
            config.health_url, timeout=aiohttp.ClientTimeout(total=config.health_timeout_s)
        ) as upstream:
            healthy = upstream.status == 200
    except (aiohttp.ClientError, TimeoutError):
        healthy = False
    return web.json_response(
        {"status": "healthy" if healthy else "unhealthy"}, status=200 if healthy else 503
    )


async def _stream(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[_CONFIG]
    connection_id = next(app[_IDS])
    started = time.perf_counter()
    client = web.WebSocketResponse(max_msg_size=config.max_message_bytes)  # autoping answers SageMaker
    await client.prepare(request)
    accept_ms = (time.perf_counter() - started) * 1000
    logger.info(
        "bridge stream accepted", extra={"connection": connection_id, "accept_ms": round(accept_ms, 2)}
    )
    app[_OPEN].add(client)
    headers = {"Authorization": f"Bearer {config.upstream_api_key}"} if config.upstream_api_key else None
    relay = Relay(
        client,
        app[_HTTP],
        upstream_url=config.realtime_url,
        upstream_headers=headers,
        connect_timeout_s=config.upstream_connect_timeout_s,
        max_message_bytes=config.max_message_bytes,
        max_pending_frames=config.max_pending_frames,
        connection_id=connection_id,
    )
    try:
        await relay.run()
    finally:
        app[_OPEN].discard(client)
    return client


async def _close_open_streams(app: web.Application) -> None:
    for client in list(app[_OPEN]):
        await client.close(code=WSCloseCode.GOING_AWAY)


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as http:
        app[_HTTP] = http
        yield


def make_app(config: BridgeConfig) -> web.Application:
    """The aiohttp application: GET|POST /ping and the bidirectional-stream WebSocket."""
    app = web.Application()
    app[_CONFIG] = config
    app[_OPEN] = set()
    app[_IDS] = itertools.count(1)
    app.cleanup_ctx.append(_http_session)
    app.on_shutdown.append(_close_open_streams)
    app.router.add_get(PING_PATH, _ping)
    app.router.add_post(PING_PATH, _ping)
    app.router.add_get(STREAM_PATH, _stream)
    return app


@asynccontextmanager
async def running_bridge(config: BridgeConfig) -> AsyncIterator[tuple[str, int]]:
    """Serve the bridge until the block exits; yields the bound (host, port) (port 0 picks a free one)."""
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        logger.info("bridge listening", extra={"host": host, "port": port, "upstream": config.upstream})
        yield host, port
    finally:
        await runner.cleanup()


async def serve(config: BridgeConfig, *, stop: asyncio.Event) -> None:
    """Serve until `stop` is set, then close open streams with 1001."""
    async with running_bridge(config):
        await stop.wait()


def parse_args(argv: Sequence[str] | None, environ: dict[str, str]) -> BridgeConfig:
    """Flags, defaulting to CALLSCOPE_BRIDGE_* environment variables."""
    default = BridgeConfig()
    env = environ.get
    parser = argparse.ArgumentParser(
        prog="python -m deploy.sagemaker.bridge", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--upstream", default=env("CALLSCOPE_BRIDGE_UPSTREAM", default.upstream))
    parser.add_argument("--host", default=env("CALLSCOPE_BRIDGE_HOST", default.host))
    parser.add_argument("--port", type=int, default=int(env("CALLSCOPE_BRIDGE_PORT", default.port)))
    parser.add_argument(
        "--realtime-path", default=env("CALLSCOPE_BRIDGE_REALTIME_PATH", default.realtime_path)
    )
    parser.add_argument("--health-path", default=env("CALLSCOPE_BRIDGE_HEALTH_PATH", default.health_path))
    parser.add_argument(
        "--connect-timeout-s",
        type=float,
        default=float(env("CALLSCOPE_BRIDGE_CONNECT_TIMEOUT_S", default.upstream_connect_timeout_s)),
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    return BridgeConfig(
        upstream=args.upstream,
        host=args.host,
        port=args.port,
        realtime_path=args.realtime_path,
        health_path=args.health_path,
        upstream_api_key=env("CALLSCOPE_BRIDGE_UPSTREAM_API_KEY") or env("VLLM_API_KEY") or None,
        upstream_connect_timeout_s=args.connect_timeout_s,
    )


def main(argv: Sequence[str] | None = None) -> None:
    from pipeline.logs import configure_logging

    config = parse_args(argv, dict(os.environ))
    configure_logging(
        os.environ.get("CALLSCOPE_LOG_FORMAT", "json"),  # type: ignore[arg-type]
        os.environ.get("CALLSCOPE_LOG_LEVEL", "INFO"),
        stage="sagemaker-bridge",
    )
    try:
        asyncio.run(
            run_until_signalled(
                lambda stop: serve(config, stop=stop), drain_deadline_s=config.drain_deadline_s
            )
        )
    except asyncio.CancelledError:  # a second signal, or streams still open at the drain deadline
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
