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

from store.batch import Batch
from store.models import (
    AssistEvent,
    Call,
    ComplianceStateRow,
    ConversationMetric,
    LegError,
    RedactionAuditRow,
    RuleSetVersion,
    Segment,
    SentimentTrendRow,
)

_calls = Call.__table__
_segments = Segment.__table__
_assist = AssistEvent.__table__
_leg_errors = LegError.__table__
_metrics = ConversationMetric.__table__
_trends = SentimentTrendRow.__table__
_audits = RedactionAuditRow.__table__
_compliance = ComplianceStateRow.__table__
_rule_versions = RuleSetVersion.__table__

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

    async def write(self, batch: Batch) -> frozenset[str]:
        """Write the batch in one transaction; the ids of the segments whose text it stored first."""
        if batch.row_count() == 0:
            return frozenset()
        async with self._engine.begin() as conn:
            return await write_batch(conn, batch)


async def write_batch(conn: AsyncConnection, batch: Batch) -> frozenset[str]:
    """Upsert every row of the batch on `conn` (the caller owns the transaction). Returns the ids
    of the segments whose text this write stored for the first time (a final re-sent after a
    takeover, or re-read after a restart, finds its text already there)."""
    await _execute(conn, _upsert_call_starts(), batch.call_starts)
    await _execute(conn, _upsert_call_ends(), batch.call_ends)
    first_texts = frozenset()
    if batch.segments:
        stored = await conn.execute(_upsert_segment_texts(), [_values(row) for row in batch.segments])
        first_texts = frozenset(segment_id for segment_id, first in stored if first)
    await _execute(conn, _upsert_sentiments(), batch.sentiments)
    await _execute(
        conn, insert(_assist).on_conflict_do_nothing(index_elements=["event_id"]), batch.assist_events
    )
    await _execute(conn, insert(_leg_errors).on_conflict_do_nothing(), batch.leg_errors)
    await _execute(conn, _upsert_latest(_metrics, ["call_id", "elapsed_ms"]), batch.metrics)
    await _execute(conn, _upsert_latest(_trends, ["call_id", "scope", "elapsed_ms"]), batch.trends)
    await _execute(conn, _upsert_latest(_audits, ["segment_id", "stage"], stamped=False), batch.audits)
    await _execute(
        conn, _upsert_latest(_compliance, ["call_id", "rule_version", "item_id"]), batch.compliance
    )
    await _execute(conn, _upsert_rule_versions(), batch.rule_versions)
    return first_texts


async def _execute(conn: AsyncConnection, statement: Any, rows: Sequence[Any]) -> None:
    if rows:
        await conn.execute(statement, [_values(row) for row in rows])


def _values(row: Any) -> dict[str, Any]:
    values = asdict(row)
    values.pop("redaction_counts", None)  # a segment's audit goes to its own table (merge)
    return values


def _upsert_latest(table: Any, key: list[str], *, stamped: bool = True) -> Any:
    """Replace the row with the same key; with `stamped`, never with an older event (a replayed one)."""
    stmt = insert(table)
    columns = [c.name for c in table.columns if c.name not in key and c.name != "stored_at"]
    where = (stmt.excluded.emitted_at >= table.c.emitted_at) if stamped else None
    return stmt.on_conflict_do_update(
        index_elements=key,
        set_={**{c: stmt.excluded[c] for c in columns}, "stored_at": func.clock_timestamp()},
        where=where,
    )


def _upsert_rule_versions() -> Any:
    # Seen on the stream: the version and when; a replay registers its content too.
    stmt = insert(_rule_versions)
    return stmt.on_conflict_do_update(
        index_elements=["version"],
        set_={
            "first_seen_at": func.least(_rule_versions.c.first_seen_at, stmt.excluded.first_seen_at),
            "content": func.coalesce(stmt.excluded.content, _rule_versions.c.content),
            "digest": func.coalesce(stmt.excluded.digest, _rule_versions.c.digest),
        },
    )


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
        # Stored first by this transaction: stored_at is set from its own clock (>= its start,
        # now()); a text stored before keeps the stamp of an earlier transaction.
    ).returning(_segments.c.segment_id, _segments.c.stored_at >= func.now())


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
