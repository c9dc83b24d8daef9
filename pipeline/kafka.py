"""Thin Kafka plumbing shared by the stages: admin sessions, topic creation, producers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.topics import TOPICS, Topics

log = logging.getLogger(__name__)

# How long a stage waits for the broker at start-up (it may be starting too) before it gives up.
BROKER_WAIT_S = 30.0


class BrokerUnreachable(Exception):
    """The broker did not answer within the start-up wait; the message is the one line to print."""


class _Client(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


C = TypeVar("C", bound=_Client)


def _not_a_connect_failure(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Unable connect to")


async def start_client(
    make: Callable[[], C], *, bootstrap: str, what: str, wait_s: float = BROKER_WAIT_S
) -> C:
    """A started client from `make()`, trying again (a new one each time, the failed one closed)
    until the broker answers or `wait_s` has passed; then BrokerUnreachable, one line."""
    # aiokafka logs an error per failed connection; while waiting, this function says it once.
    library_log = logging.getLogger("aiokafka")
    library_log.addFilter(_not_a_connect_failure)
    try:
        return await _start(make, bootstrap, what, wait_s)
    finally:
        library_log.removeFilter(_not_a_connect_failure)


async def _start(make: Callable[[], C], bootstrap: str, what: str, wait_s: float) -> C:
    from aiokafka.errors import KafkaConnectionError, KafkaError

    deadline = time.monotonic() + wait_s
    delay, waiting_since = 0.25, None
    while True:
        client = make()
        try:
            await client.start()
            if waiting_since is not None:
                waited = round(time.monotonic() - waiting_since, 1)
                log.info("broker reachable", extra={"client": what, "waited_s": waited})
            return client
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await client.stop()  # else aiokafka warns "Unclosed AIOKafka..." at exit
            if time.monotonic() + delay > deadline:
                raise BrokerUnreachable(
                    f"cannot reach the broker at {bootstrap} ({what}) within {wait_s:g} s: "
                    f"{type(exc).__name__}"
                ) from None
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.warning("broker not reachable yet, waiting", extra={"client": what, "wait_s": wait_s})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


@contextlib.asynccontextmanager
async def admin_client(
    bootstrap: str, *, client_id: str = "callscope-admin"
) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def create_missing(
    admin: AIOKafkaAdminClient,
    names: Iterable[str],
    partitions: int,
    *,
    configs: dict[str, str] | None = None,
) -> list[str]:
    """Create those of `names` that do not exist; returns them. Another creator racing us is fine."""
    existing = set(await admin.list_topics())
    missing = [t for t in names if t not in existing]
    if missing:
        try:
            await admin.create_topics(
                [NewTopic(t, partitions, replication_factor=1, topic_configs=configs or {}) for t in missing]
            )
        except TopicAlreadyExistsError:
            pass
    return missing


async def partition_count(admin: AIOKafkaAdminClient, topic: str) -> int | None:
    """The topic's partition count, or None when it does not exist."""
    if topic not in set(await admin.list_topics()):
        return None
    (described,) = await admin.describe_topics([topic])
    return len(described["partitions"])


async def create_topics(bootstrap: str, partitions: int, topics: Topics = TOPICS) -> None:
    """Create the pipeline's topics explicitly; brokers that auto-create pick their own layout."""
    async with admin_client(bootstrap) as admin:
        missing = await create_missing(admin, topics.all(), partitions)
    if missing:
        log.info("topics created", extra={"topics": missing, "partitions": partitions})


def make_producer(bootstrap: str, *, client_id: str, linger_ms: int = 5) -> AIOKafkaProducer:
    # Not idempotent: Tansu rejects idempotent producers through aiokafka. Duplicates are
    # harmless downstream because every durable id is deterministic.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        linger_ms=linger_ms,
        max_request_size=2_000_000,
    )


async def watch_broker(
    probe: Callable[[], Awaitable[object]], *, stage: str, interval_s: float = 1.0, timeout_s: float = 2.0
) -> None:
    """Until cancelled, ask the broker something small (`probe`, e.g. a consumer's `topics()`)
    every `interval_s`; one line when it stops answering within `timeout_s` (down or frozen), one
    when it answers again, with the outage's length. A stalled fetch or commit says nothing itself."""
    from aiokafka.errors import KafkaError

    down_since: float | None = None
    while True:
        try:
            async with asyncio.timeout(timeout_s):
                await probe()
        except (TimeoutError, KafkaError, OSError) as exc:
            if down_since is None:
                down_since = (
                    time.monotonic() - timeout_s if isinstance(exc, TimeoutError) else time.monotonic()
                )
                log.warning("broker not answering", extra={"stage": stage, "error": type(exc).__name__})
        else:
            if down_since is not None:
                outage_s = round(time.monotonic() - down_since, 1)
                log.info("broker answering again", extra={"stage": stage, "outage_s": outage_s})
                down_since = None
        await asyncio.sleep(interval_s)
