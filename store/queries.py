"""Read side: what is stored about one call (the demo prints it; dashboards use the same shapes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from store.models import AssistEvent, Call, LegError, Segment


@dataclass(frozen=True)
class CallInfo:
    call_id: str
    started_at: datetime | None
    ended_at: datetime | None
    agent_id: str | None
    queue: str | None
    direction: str | None
    source: str | None
    metadata: dict[str, Any]
    end_reason: str | None


@dataclass(frozen=True)
class SegmentInfo:
    segment_id: str
    leg: str
    start_ms: int
    end_ms: int
    text: str
    confidence: float | None
    sentiment_compound: float | None
    emitted_at: datetime | None
    stored_at: datetime | None

    @property
    def store_latency_seconds(self) -> float | None:
        """Final emitted by the transcriber -> row written (two clocks: same box, or NTP)."""
        if self.emitted_at is None or self.stored_at is None:
            return None
        return (self.stored_at - self.emitted_at).total_seconds()


@dataclass(frozen=True)
class AssistInfo:
    event_id: str
    kind: str
    leg: str
    segment_id: str
    rule_id: str
    rule_version: str
    on_final: bool
    matched: str
    payload: str
    severity: str | None
    emitted_at: datetime


@dataclass(frozen=True)
class LegErrorInfo:
    leg: str
    code: str
    at: datetime
    retryable: bool


@dataclass(frozen=True)
class CallSummary:
    call: CallInfo | None  # None while call.started has not been stored
    segments: tuple[SegmentInfo, ...]
    assist_events: tuple[AssistInfo, ...]
    leg_errors: tuple[LegErrorInfo, ...]


Executor = AsyncEngine | AsyncConnection | AsyncSession


async def call_summary(db: Executor, call_id: str) -> CallSummary | None:
    """The call, its final segments in time order, its assist events; None if nothing is stored."""
    if isinstance(db, AsyncEngine):
        async with db.connect() as conn:
            return await _call_summary(conn, call_id)
    return await _call_summary(db, call_id)


async def _call_summary(db: AsyncConnection | AsyncSession, call_id: str) -> CallSummary | None:
    call_rows = await _rows(db, select(Call.__table__).where(Call.call_id == call_id))
    segment_rows = await _rows(
        db,
        select(Segment.__table__)
        # A row with no text holds a sentiment whose final has not been stored yet.
        .where(Segment.call_id == call_id, Segment.text.is_not(None))
        .order_by(Segment.start_ms, Segment.leg),
    )
    assist_rows = await _rows(
        db,
        select(AssistEvent.__table__)
        .where(AssistEvent.call_id == call_id)
        .order_by(AssistEvent.emitted_at, AssistEvent.event_id),
    )
    error_rows = await _rows(
        db, select(LegError.__table__).where(LegError.call_id == call_id).order_by(LegError.at)
    )
    if not (call_rows or segment_rows or assist_rows or error_rows):
        return None
    return CallSummary(
        call=_fields(CallInfo, call_rows[0]) if call_rows else None,
        segments=tuple(_fields(SegmentInfo, row) for row in segment_rows),
        assist_events=tuple(_fields(AssistInfo, row) for row in assist_rows),
        leg_errors=tuple(_fields(LegErrorInfo, row) for row in error_rows),
    )


async def _rows(db: AsyncConnection | AsyncSession, query: Select[Any]) -> list[dict[str, Any]]:
    result = await db.execute(query)
    return [dict(row) for row in result.mappings()]


def _fields(cls: Any, row: dict[str, Any]) -> Any:
    return cls(**{name: row[name] for name in cls.__dataclass_fields__})
