"""Reading a topic of the real broker in a test: from the beginning until a condition, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer


async def read_until(
    bootstrap: str, topic: str, done: Callable[[list[bytes]], bool], deadline_s: float
) -> list[bytes]:
    """Values of `topic` from its beginning until `done(values)`; fails the test past the deadline."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + deadline_s
        while not done(values):
            assert time.monotonic() < deadline, f"{topic}: condition not met within {deadline_s} s"
            batches = await consumer.getmany(timeout_ms=200)
            values += [r.value for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    return values
