"""Contract of the dead-letter topic: what was wrong with a record and where it came from."""

from __future__ import annotations

import base64
import time
from typing import Any, Literal, Protocol

from deploy.contract import Event

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
