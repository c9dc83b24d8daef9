"""Idempotent writes of a batch of rows, in one transaction.

Every statement is INSERT ... ON CONFLICT on the row's deterministic key, so a replayed batch
leaves the same rows. A final segment and its final sentiment are both upserts into the same
row, each touching only its own columns: whichever arrives first creates the row and the other
fills it in. That is race-free even when the transcript and assist partitions of a call are
owned by two different workers, which a "pending sentiment" side table under READ COMMITTED
would not be (each side can miss the other's uncommitted row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.models import AssistEvent, Call, LegError, Segment
from store.sink import Batch

_calls = Call.__table__
_segments = Segment.__table__
_assist = AssistEvent.__table__
_leg_errors = LegError.__table__

_SEGMENT_TEXT_COLUMNS = (
    "call_id",
    "leg",
    "start_ms",
    "end_ms",
    "text",
    "confidence",
    "audio_captured_at",
    "audio_received_at",
    "emitted_at",
    "speech_ended_at",
)
_SENTIMENT_COLUMNS = (
    "sentiment_compound",
    "sentiment_positive",
    "sentiment_negative",
    "sentiment_neutral",
    "sentiment_emitted_at",
)
_CALL_START_COLUMNS = ("started_at", "agent_id", "queue", "direction", "source", "metadata")


class Repository:
    """Writes batches through an engine; one transaction per batch."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def write(self, batch: Batch) -> None:
        if batch.row_count() == 0:
            return
        async with self._engine.begin() as conn:
            await write_batch(conn, batch)


async def write_batch(conn: AsyncConnection, batch: Batch) -> None:
    """Upsert every row of the batch on `conn` (the caller owns the transaction)."""
    await _execute(conn, _upsert_call_starts(), batch.call_starts)
    await _execute(conn, _upsert_call_ends(), batch.call_ends)
    await _execute(conn, _upsert_segment_texts(), batch.segments)
    await _execute(conn, _upsert_sentiments(), batch.sentiments)
    await _execute(
        conn, insert(_assist).on_conflict_do_nothing(index_elements=["event_id"]), batch.assist_events
    )
    await _execute(conn, insert(_leg_errors).on_conflict_do_nothing(), batch.leg_errors)


async def _execute(conn: AsyncConnection, statement: Any, rows: Sequence[Any]) -> None:
    if rows:
        await conn.execute(statement, [asdict(row) for row in rows])


def _upsert_call_starts() -> Any:
    stmt = insert(_calls).values(updated_at=func.clock_timestamp())
    return stmt.on_conflict_do_update(
        index_elements=["call_id"],
        set_={**{c: stmt.excluded[c] for c in _CALL_START_COLUMNS}, "updated_at": func.clock_timestamp()},
    )


def _upsert_call_ends() -> Any:
    stmt = insert(_calls).values(updated_at=func.clock_timestamp())
    return stmt.on_conflict_do_update(
        index_elements=["call_id"],
        set_={
            "ended_at": stmt.excluded.ended_at,
            "end_reason": stmt.excluded.end_reason,
            "updated_at": func.clock_timestamp(),
        },
    )


def _upsert_segment_texts() -> Any:
    stmt = insert(_segments).values(stored_at=func.clock_timestamp())
    return stmt.on_conflict_do_update(
        index_elements=["segment_id"],
        set_={
            **{c: stmt.excluded[c] for c in _SEGMENT_TEXT_COLUMNS},
            # First time the text is stored: a replay keeps it, so stored_at - emitted_at stays
            # the latency of the first write.
            "stored_at": func.coalesce(_segments.c.stored_at, func.clock_timestamp()),
        },
    )


def _upsert_sentiments() -> Any:
    # A row created by the sentiment has no text yet: stored_at stays NULL until the final lands.
    stmt = insert(_segments).values(stored_at=None, sentiment_stored_at=func.clock_timestamp())
    return stmt.on_conflict_do_update(
        index_elements=["segment_id"],
        set_={
            **{c: stmt.excluded[c] for c in _SENTIMENT_COLUMNS},
            "sentiment_stored_at": func.coalesce(_segments.c.sentiment_stored_at, func.clock_timestamp()),
        },
    )
