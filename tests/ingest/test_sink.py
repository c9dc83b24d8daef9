"""The bounded path from a call to Kafka: order, backpressure, the broker deadline."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError

from ingest.sink import BrokerUnavailable, CallWriter


class FakeProducer:
    """Records sends; each send's delivery future is resolved by the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int | None]] = []
        self.futures: list[asyncio.Future[object]] = []

    async def send(self, topic, value, key=None, timestamp_ms=None):
        self.sent.append((topic, value, key, timestamp_ms))
        future = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def ack(self, n: int) -> None:
        for future in self.futures[:n]:
            if not future.done():
                future.set_result(None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)  # let other tasks run; no wall time passes in these tests


async def test_records_go_out_in_order_keyed_by_call_and_stamped_with_receive_time():
    producer = FakeProducer()
    writer = CallWriter(producer, "audio", "call-1", deadline_s=5, max_in_flight=10)
    for i in range(3):
        await writer.write(b"r%d" % i, received_at=100.0 + i)
    assert [(v, k, ts) for _, v, k, ts in producer.sent] == [
        (b"r0", b"call-1", 100_000),
        (b"r1", b"call-1", 101_000),
        (b"r2", b"call-1", 102_000),
    ]
    producer.ack(3)
    await writer.flush()
    assert writer.in_flight == 0 and writer.delivered == 3


async def test_a_full_window_holds_the_writer_until_the_broker_acknowledges():
    producer, clock = FakeProducer(), Clock()
    acks: list[float] = []
    writer = CallWriter(
        producer, "audio", "call-1", deadline_s=5, max_in_flight=2, on_ack=acks.append, monotonic=clock
    )
    await writer.write(b"a", 1.0)
    await writer.write(b"b", 1.0)
    third = asyncio.create_task(writer.write(b"c", 1.0))
    await settle()
    assert not third.done() and len(producer.sent) == 2  # backpressure: nothing more is taken
    clock.now = 0.3
    producer.ack(1)
    await settle()
    assert third.done() and len(producer.sent) == 3
    assert acks == [pytest.approx(0.3)]


async def test_no_acknowledgement_within_the_deadline_means_the_broker_is_unavailable():
    producer, clock = FakeProducer(), Clock()
    writer = CallWriter(producer, "audio", "call-1", deadline_s=5, max_in_flight=100, monotonic=clock)
    await writer.write(b"a", 1.0)
    clock.now = 5.1  # the oldest record has waited past the deadline
    with pytest.raises(BrokerUnavailable):
        await writer.write(b"b", 1.0)
    assert len(producer.sent) == 1  # nothing more is buffered


async def test_a_failed_delivery_means_the_broker_is_unavailable():
    producer = FakeProducer()
    writer = CallWriter(producer, "audio", "call-1", deadline_s=5, max_in_flight=1)
    await writer.write(b"a", 1.0)
    producer.futures[0].set_exception(KafkaTimeoutError())
    with pytest.raises(BrokerUnavailable) as caught:
        await writer.write(b"b", 1.0)
    assert caught.value.retryable
