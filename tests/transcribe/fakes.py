"""In-memory fakes of the worker's seams: a SpeechSession, and the consumer the intake reads."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Self

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata

from ingest.events import Leg
from transcribe.session import FinalText, SessionClosed, SessionEvent

_END = object()


class FakeSession:
    """Counts audio; every `turn_ms` of audio becomes a FinalText "turn N"; end_input finalises the rest."""

    def __init__(self, turn_ms: int = 1_000, max_queued: int = 8) -> None:
        self.turn_ms = turn_ms
        self.received = bytearray()
        self.closed = False
        self.ended = False
        self._turn_start_ms = 0
        self._events: asyncio.Queue[SessionEvent | object] = asyncio.Queue(max_queued)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def received_ms(self) -> int:
        return len(self.received) // 32

    async def send_audio(self, pcm16_16k: bytes) -> None:
        if self.ended or self.closed:
            raise SessionClosed()
        self.received += pcm16_16k
        while self.received_ms - self._turn_start_ms >= self.turn_ms:
            await self._final(self._turn_start_ms + self.turn_ms)

    async def end_input(self) -> None:
        self.ended = True
        if self.received_ms > self._turn_start_ms:
            await self._final(self.received_ms)
        await self._events.put(_END)

    async def _final(self, end_ms: int) -> None:
        text = f"turn {self._turn_start_ms // self.turn_ms}"
        await self._events.put(FinalText(self._turn_start_ms, end_ms, text, 0.9))
        self._turn_start_ms = end_ms

    async def events(self) -> AsyncIterator[SessionEvent]:
        while True:
            item = await self._events.get()
            if item is _END:
                return
            assert isinstance(item, SessionEvent.__args__)  # type: ignore[attr-defined]
            yield item

    async def aclose(self) -> None:
        # As the seam says: events() ends after aclose().
        if not self.closed and self._events.empty():
            self._events.put_nowait(_END)
        self.closed = True


class FakeSessionFactory:
    def __init__(self, turn_ms: int = 1_000) -> None:
        self.turn_ms = turn_ms
        self.sessions: dict[tuple[str, Leg], list[FakeSession]] = {}
        self.languages: dict[tuple[str, Leg], str | None] = {}

    def __call__(self, *, call_id: str, leg: Leg, language: str | None = None) -> FakeSession:
        self.languages[(call_id, leg)] = language
        session = FakeSession(self.turn_ms)
        self.sessions.setdefault((call_id, leg), []).append(session)
        return session


def record(topic: str, partition: int, offset: int, value: bytes = b"") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"call",
        value=value,
        checksum=None,
        serialized_key_size=4,
        serialized_value_size=len(value),
        headers=(),
    )


class FakeConsumer:
    """The intake's Consumer in memory: `deliver` puts records on a partition; getmany hands out
    those of assigned, unpaused partitions. With nothing to hand out it returns {} at once when
    timeout_ms is 0, else it waits for deliver() or resume() (it has no timer). `log` records
    commits, and a FakeProducer given the same list records its flushes among them."""

    def __init__(self, topic: str, partitions: tuple[int, ...] = (0, 1)) -> None:
        self.topic = topic
        self.assigned = {TopicPartition(topic, p) for p in partitions}
        self.paused: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, int]] = []
        self.refuse_commits = False
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.log: list[str] = []
        self._arrived = asyncio.Event()
        self._waiting: dict[TopicPartition, deque[ConsumerRecord[bytes, bytes]]] = {}
        self._next_offset: dict[TopicPartition, int] = {}

    def deliver(self, partition: int, count: int = 1, *, values: Sequence[bytes] = ()) -> None:
        """Put `values` (or `count` empty values) on the partition, at the next offsets."""
        tp = TopicPartition(self.topic, partition)
        for value in values or [b""] * count:
            offset = self._next_offset.get(tp, 0)
            self._next_offset[tp] = offset + 1
            self._waiting.setdefault(tp, deque()).append(record(self.topic, partition, offset, value))
        self._arrived.set()

    def revoke(self, partition: int) -> TopicPartition:
        tp = TopicPartition(self.topic, partition)
        self.assigned.discard(tp)
        return tp

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        while True:
            out: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
            room = max_records if max_records is not None else 1 << 30
            for tp, waiting in self._waiting.items():
                while waiting and room and tp in self.assigned and tp not in self.paused:
                    out.setdefault(tp, []).append(waiting.popleft())
                    room -= 1
            if out or not timeout_ms:
                return out
            self._arrived.clear()
            await self._arrived.wait()

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)
        self._arrived.set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        if self.refuse_commits:
            raise CommitFailedError("the group rebalanced")
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})
        self.log.append("commit")


class FakeProducer:
    """Records what was sent and, in `log`, the order of flushes among the consumer's commits."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.log = log if log is not None else []
        self._sent_more = asyncio.Event()

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, value, key))
        self._sent_more.set()

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        await self.send(topic, value, key)

    async def flush(self) -> None:
        self.log.append("flush")

    def values(self, topic: str) -> list[bytes]:
        return [value for sent_to, value, _ in self.sent if sent_to == topic]

    async def wait_until(self, condition: Callable[[], bool], deadline_s: float = 10) -> None:
        """Wait, up to `deadline_s`, until `condition()` holds after a send."""
        async with asyncio.timeout(deadline_s):
            while not condition():
                self._sent_more.clear()
                await self._sent_more.wait()
