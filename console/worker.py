"""The console process: live feed, web server and /metrics, until stopped.

Entry point for `callscope console`: `run(config, stop=stop)` serves until `stop` is set, then
closes the streams and the feed and returns. No signal handlers here (the CLI owns them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Callable, Generator

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from console.agent_log import AgentLog
from console.app import build_app
from console.auth import Signer
from console.changes import Changes
from console.config import ConsoleConfig
from console.context import Console
from console.feed import Hub, LiveFeed
from console.live_state import LiveState
from console.users import UserDirectory
from pipeline.stage import metrics_server

log = logging.getLogger(__name__)

STAGE = "console"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the stage toolkit handles SIGTERM/SIGINT and sets `stop`


def build_console(config: ConsoleConfig) -> Console:
    """Everything the handlers share; raises UsersFileError for a missing or bad users file."""
    secret = config.session_secret.get_secret_value().encode() if config.session_secret else None
    if secret is None:
        log.warning("no CALLSCOPE_CONSOLE_SESSION_SECRET: sessions end when this process does")
        secret = secrets.token_bytes(32)
    state = LiveState(
        max_calls=config.max_live_calls,
        stale_call_s=config.stale_call_s,
        ended_call_linger_s=config.ended_call_linger_s,
        agent_alert_categories=config.agent_alert_categories,
    )
    engine: AsyncEngine | None = (
        create_async_engine(config.database_url, pool_pre_ping=True, pool_size=5, connect_args={"timeout": 5})
        if config.database_url
        else None
    )
    return Console(
        config=config,
        hub=Hub(state, AgentLog(), Changes()),
        users=UserDirectory(config.users_file),
        signer=Signer(secret),
        engine=engine,
    )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


async def run(
    config: ConsoleConfig, *, stop: asyncio.Event, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve the console until `stop` is set. `on_ready` gets the base URL once it listens."""
    console = build_console(config)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    server = _Server(
        uvicorn.Config(
            build_app(console),
            log_config=None,
            access_log=False,  # its line holds the query string; the app logs its own without it
            lifespan="off",
            timeout_graceful_shutdown=1,
            ws="none",
        )
    )
    # uvicorn's access line holds the query string (a searched phrase, a panel token): off, whatever
    # logging configuration the process has; the app logs its own line without it.
    logging.getLogger("uvicorn.access").disabled = True
    feed = LiveFeed(
        console.hub,
        bootstrap=config.kafka_bootstrap,
        transcripts_topic=config.transcripts_topic,
        assist_topic=config.assist_topic,
        readback_s=config.readback_s,
        client_id=config.client_id,
        poll_timeout_ms=config.poll_timeout_ms,
    )

    async def stop_server() -> None:
        await stop.wait()
        server.should_exit = True
        server.listening.set()

    async def announce() -> None:
        await server.listening.wait()
        if not server.started:
            return
        log.info("console serving", extra={"url": url})
        if on_ready is not None:
            on_ready(url)

    try:
        with metrics_server(config.metrics_host_port(), stage=STAGE):
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(feed.run(stop), name="console-feed")
                tasks.create_task(server.serve(sockets=[sock]), name="console-http")
                tasks.create_task(stop_server(), name="console-stop")
                tasks.create_task(announce(), name="console-ready")
    finally:
        sock.close()
        if console.engine is not None:
            await console.engine.dispose()
