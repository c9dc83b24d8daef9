"""Thin Kafka plumbing shared by the stages: admin sessions, topic creation, producers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.topics import TOPICS, Topics

log = logging.getLogger(__name__)


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
