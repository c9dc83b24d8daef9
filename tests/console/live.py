"""Helpers of the console tests: the users, a console in this process, producing events, SSE reading."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaProducer

from console.config import ConsoleConfig
from console.users import add_user
from console.worker import run
from pipeline.contract import Event
from pipeline.kafka import create_topics
from pipeline.topics import TOPICS

T = TypeVar("T")
PASSWORD = "correct horse battery"
SECRET = "test-secret-" + "x" * 32
PARTITIONS = 2


def write_users(path: Path) -> Path:
    """admin root; supervisors sam (billing) and tess (tech); agents ava and bob."""
    teams = {"billing": ("billing", "billing-vip"), "tech": ("tech",)}
    add_user(path, "root", PASSWORD, "admin", team_queues=teams)
    add_user(path, "sam", PASSWORD, "supervisor", teams=("billing",))
    add_user(path, "tess", PASSWORD, "supervisor", teams=("tech",))
    add_user(path, "ava", PASSWORD, "agent")
    add_user(path, "bob", PASSWORD, "agent")
    return path


@dataclass
class ConsoleServer:
    url: str
    config: ConsoleConfig


@contextlib.asynccontextmanager
async def serve_console(
    bootstrap: str, users_path: Path, *, database_url: str = "", readback_s: float = 600, **fields: Any
) -> AsyncIterator[ConsoleServer]:
    await create_topics(bootstrap, PARTITIONS)
    config = ConsoleConfig(
        **{
            "kafka_bootstrap": bootstrap,
            "port": 0,
            "users_file": users_path,
            "session_secret": SECRET,
            "database_url": database_url,
            "metrics_address": "off",
            "readback_s": readback_s,
            "partitions": PARTITIONS,
        }
        | fields
    )
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(config, stop=stop, on_ready=ready.set_result), name="console-under-test")
    try:
        url = await asyncio.wait_for(asyncio.shield(ready), 20)
        server = ConsoleServer(url=url, config=config)
        await eventually(lambda: _feed_live(url), deadline_s=20)
        yield server
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def _feed_live(url: str) -> bool:
    async with httpx.AsyncClient(base_url=url) as client:
        return (await client.get("/healthz")).json()["feed"]["state"] == "live"


async def eventually(
    check: Callable[[], Awaitable[T]], *, deadline_s: float = 10.0, every_s: float = 0.05
) -> T:
    """Wait until `check()` is truthy (a condition with a deadline, never a fixed sleep)."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {deadline_s} s (last: {value!r})")
        await asyncio.sleep(every_s)


async def send(producer: AIOKafkaProducer, *events: Event) -> None:
    """Produce events the way the stages do: transcript or assist topic, keyed by call id."""
    for event in events:
        topic = TOPICS.transcripts if event.type.startswith(("call.", "segment.", "leg.")) else TOPICS.assist  # type: ignore[attr-defined]
        await producer.send(topic, event.to_bytes(), key=event.call_id.encode())  # type: ignore[attr-defined]
    await producer.flush()


class SignedIn(httpx.AsyncClient):
    """A client already used to sign in: `async with` only closes it at the end."""

    async def __aenter__(self) -> SignedIn:
        return self


async def signed_in(url: str, username: str, password: str = PASSWORD) -> SignedIn:
    """An HTTP client with the session cookie and the CSRF header of `username`."""
    client = SignedIn(base_url=url, timeout=10)
    response = await client.post("/api/login", json={"username": username, "password": password})
    if response.is_error:
        await client.aclose()
        response.raise_for_status()
    client.headers["X-CSRF-Token"] = response.json()["csrf"]
    return client


@dataclass
class SseEvent:
    event: str
    data: Any
    id: str | None


async def read_sse(
    response: httpx.Response, *, until: Callable[[list[SseEvent]], bool], deadline_s: float = 10.0
) -> list[SseEvent]:
    """Collect events from an open SSE response until `until(events)` holds."""
    events: list[SseEvent] = []
    fields: dict[str, str] = {}

    async def collect() -> None:
        async for line in response.aiter_lines():
            if line == "":
                if "event" in fields:
                    events.append(
                        SseEvent(fields["event"], json.loads(fields.get("data", "null")), fields.get("id"))
                    )
                    if until(events):
                        return
                fields.clear()
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value

    await asyncio.wait_for(collect(), deadline_s)
    return events
