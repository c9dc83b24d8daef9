"""The dead-letter topic: its contract, and the one sink every stage sends rejected records to.

A dead letter says what was wrong with a record and where it came from. The sink counts it
(one metric for every stage), logs it with fixed text, and sends it keyed like its source; the
gateway adds a bounded spool file for letters the broker will not take in time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from aiokafka.errors import KafkaError
from prometheus_client import Counter

from pipeline.contract import Event

log = logging.getLogger(__name__)

MAX_KEPT_BYTES = 64_000


class DeadLetter(Event):
    type: Literal["deadletter"] = "deadletter"
    stage: str  # ingest, transcribe, analyze, store
    reason: str  # short fixed code, e.g. truncated_frame, unknown_codec, call_not_started
    detail: str = ""  # never carries transcript text or audio
    source_topic: str = ""
    source_partition: int | None = None
    source_offset: int | None = None
    key: str | None = None
    value_b64: str = ""  # the original value (first MAX_KEPT_BYTES), so it can be inspected or replayed
    value_bytes: int = 0
    value_truncated: bool = False
    detected_at: float


def dead_letter(
    *,
    stage: str,
    reason: str,
    detail: str = "",
    value: bytes | None = None,
    key: bytes | str | None = None,
    topic: str = "",
    partition: int | None = None,
    offset: int | None = None,
) -> DeadLetter:
    value = value or b""
    if isinstance(key, bytes):
        key = key.decode(errors="replace")
    return DeadLetter(
        stage=stage,
        reason=reason,
        detail=detail[:500],
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=key,
        value_b64=base64.b64encode(value[:MAX_KEPT_BYTES]).decode(),
        value_bytes=len(value),
        value_truncated=len(value) > MAX_KEPT_BYTES,
        detected_at=time.time(),
    )


class SourceRecord(Protocol):
    """What a consumed record offers: an aiokafka ConsumerRecord or a faust Message."""

    topic: str
    partition: int
    offset: int
    key: Any
    value: Any


def dead_letter_for(record: SourceRecord, *, stage: str, reason: str, detail: str = "") -> DeadLetter:
    """A dead letter for a consumed record, with its position and original bytes."""
    key, value = record.key, record.value
    return dead_letter(
        stage=stage,
        reason=reason,
        detail=detail,
        value=value if isinstance(value, bytes) else None,
        key=key if isinstance(key, bytes | str) else None,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )


DEAD_LETTERS = Counter(
    "callscope_dead_letters_total",
    "Records rejected, by stage, reason and where the dead letter went (topic, spool or log)",
    ["stage", "reason", "where"],
)

# Sends one record value with its key to the dead-letter topic (aiokafka or faust underneath).
SendRecord = Callable[[bytes | None, bytes], Awaitable[object]]


class KafkaSender(Protocol):
    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> Any: ...


class DeadLetterSpool:
    """A bounded JSON-lines file for dead letters the broker would not take."""

    def __init__(self, path: Path, max_bytes: int = 50_000_000) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def append(self, letter: DeadLetter) -> bool:
        line = json.dumps(letter.model_dump(mode="json"), separators=(",", ":")) + "\n"
        try:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(line) > self.max_bytes:
                return False
            with open(self.path, "a", encoding="utf-8") as spool:
                spool.write(line)
                spool.flush()
                os.fsync(spool.fileno())
        except OSError:
            return False
        return True


class DeadLetterSink:
    """Where a stage's rejected records go. Without `timeout_s` a broker error propagates (the
    caller must not commit past the record); with it, a letter the broker does not take in time
    goes to the spool, and failing that to an error log line. Never silent."""

    def __init__(
        self,
        send: SendRecord,
        *,
        stage: str,
        timeout_s: float | None = None,
        spool: DeadLetterSpool | None = None,
    ) -> None:
        self._send = send
        self.stage = stage
        self._timeout_s = timeout_s
        self._spool = spool

    @classmethod
    def to_topic(
        cls, producer: KafkaSender, topic: str, *, stage: str, **options: Any
    ) -> DeadLetterSink:
        """A sink that sends through an aiokafka producer to `topic`."""

        async def send(key: bytes | None, value: bytes) -> object:
            return await producer.send_and_wait(topic, value, key=key)

        return cls(send, stage=stage, **options)

    async def reject(self, record: SourceRecord, reason: str, detail: str = "") -> str:
        """Dead-letter a consumed record; returns where the letter went."""
        return await self.publish(dead_letter_for(record, stage=self.stage, reason=reason, detail=detail))

    async def publish(self, letter: DeadLetter) -> str:
        """Send `letter`; returns where it went: "topic", "spool" or "log"."""
        log.warning(
            "record dead-lettered",
            extra={
                "stage": letter.stage,
                "reason": letter.reason,
                "source_topic": letter.source_topic,
                "source_partition": letter.source_partition,
                "source_offset": letter.source_offset,
            },
        )
        where = await self._deliver(letter)
        DEAD_LETTERS.labels(letter.stage, letter.reason, where).inc()
        return where

    async def _deliver(self, letter: DeadLetter) -> str:
        key = letter.key.encode() if letter.key else None
        if self._timeout_s is None:
            await self._send(key, letter.to_bytes())
            return "topic"
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._send(key, letter.to_bytes())
            return "topic"
        except (TimeoutError, KafkaError):
            pass
        if self._spool is not None and await asyncio.to_thread(self._spool.append, letter):
            log.error("dead letter spooled", extra={"reason": letter.reason, "spool": str(self._spool.path)})
            return "spool"
        log.error("dead letter not stored", extra={"reason": letter.reason, "key": letter.key})
        return "log"
