"""The bounded path from a call's socket to Kafka.

Each call writes through a CallWriter: records go to the producer in order (one key, one
partition), at most `max_in_flight` of them unacknowledged. When the broker is slow the writer
waits, so the socket handler stops reading and TCP pushes back on the client. When the oldest
record has gone unacknowledged past the deadline the broker counts as unreachable: the writer
raises BrokerUnavailable and the gateway ends the call, instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """No acknowledgement from the broker within the deadline; a later call may succeed."""

    retryable = True


class RecordProducer(Protocol):
    """The part of AIOKafkaProducer the writer uses (a fake implements it in unit tests)."""

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, timestamp_ms: int | None = None
    ) -> asyncio.Future[Any]: ...


class CallWriter:
    """One call's records to the audio topic: ordered, bounded in flight, with a deadline."""

    def __init__(
        self,
        producer: RecordProducer,
        topic: str,
        call_id: str,
        *,
        deadline_s: float,
        max_in_flight: int,
        on_ack: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._key = call_id.encode()
        self._deadline_s = deadline_s
        self._max = max_in_flight
        self._on_ack = on_ack
        self._monotonic = monotonic
        self._in_flight: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.delivered = 0

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def write(self, value: bytes, received_at: float) -> None:
        """Hand one record to the producer; waits (backpressure) while too many are unacknowledged."""
        self._settle_done()
        while self._in_flight and (
            len(self._in_flight) >= self._max or self._oldest_age() >= self._deadline_s
        ):
            await self._settle_oldest()
        sent_at = self._monotonic()
        # No asyncio.timeout here (a timer per record is a tenth of the gateway's CPU): the
        # producer's own request timeout, set to the deadline, bounds a blocked append.
        try:
            future = await self._producer.send(
                self._topic, value, key=self._key, timestamp_ms=round(received_at * 1000)
            )
        except KafkaError as exc:
            raise BrokerUnavailable(type(exc).__name__) from None
        if self._on_ack is not None:
            on_ack, start = self._on_ack, sent_at
            future.add_done_callback(
                lambda f: None if f.cancelled() or f.exception() else on_ack(self._monotonic() - start)
            )
        self._in_flight.append((future, sent_at))

    async def flush(self) -> None:
        """Wait until every record is acknowledged, within the deadline of each."""
        while self._in_flight:
            await self._settle_oldest()

    def _oldest_age(self) -> float:
        future, sent_at = self._in_flight[0]
        return 0.0 if future.done() else self._monotonic() - sent_at

    def _settle_done(self) -> None:
        while self._in_flight and self._in_flight[0][0].done():
            self._pop()

    async def _settle_oldest(self) -> None:
        future, sent_at = self._in_flight[0]
        if not future.done():
            remaining = self._deadline_s - (self._monotonic() - sent_at)
            if remaining <= 0:
                raise BrokerUnavailable("no acknowledgement within the deadline")
            try:
                await asyncio.wait_for(asyncio.shield(future), remaining)
            except TimeoutError:
                raise BrokerUnavailable("no acknowledgement within the deadline") from None
            except KafkaError as exc:
                raise BrokerUnavailable(type(exc).__name__) from None
        self._pop()

    def _pop(self) -> None:
        future, _ = self._in_flight.popleft()
        if not future.cancelled() and future.exception() is not None:
            raise BrokerUnavailable(type(future.exception()).__name__)
        self.delivered += 1
