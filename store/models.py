"""Tables of the store: calls, final segments (with their final sentiment), assist events, leg errors.

There are no foreign keys between them: the transcript and assist topics are consumed
independently, so a segment, its sentiment or a call's end can reach the database before the
call's start does. Every table is keyed by the deterministic id its topic contract defines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, Double, Index, MetaData, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Call(Base):
    """One row per call. Start fields are NULL until call.started is stored, end fields until call.ended."""

    __tablename__ = "calls"

    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    agent_id: Mapped[str | None] = mapped_column(Text)
    queue: Mapped[str | None] = mapped_column(Text)
    direction: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, nullable=False, server_default="{}")
    end_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.clock_timestamp()
    )

    __table_args__ = (
        CheckConstraint("direction IN ('inbound', 'outbound')", name="direction"),
        Index(None, "started_at"),
    )


class Segment(Base):
    """A final segment. A row created by a sentiment that arrived first has NULL text until its final lands.

    `stored_at` is when the final's text was first written (DB clock), so final -> row latency is
    `stored_at - emitted_at`; `sentiment_stored_at` is the same for the final's sentiment.
    """

    __tablename__ = "segments"

    segment_id: Mapped[str] = mapped_column(Text, primary_key=True)
    call_id: Mapped[str] = mapped_column(Text, nullable=False)
    leg: Mapped[str] = mapped_column(Text, nullable=False)
    start_ms: Mapped[int | None] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Double)
    audio_captured_at: Mapped[datetime | None] = mapped_column(Timestamp)
    audio_received_at: Mapped[datetime | None] = mapped_column(Timestamp)
    emitted_at: Mapped[datetime | None] = mapped_column(Timestamp)
    speech_ended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    stored_at: Mapped[datetime | None] = mapped_column(Timestamp, server_default=func.clock_timestamp())
    sentiment_compound: Mapped[float | None] = mapped_column(Double)
    sentiment_positive: Mapped[float | None] = mapped_column(Double)
    sentiment_negative: Mapped[float | None] = mapped_column(Double)
    sentiment_neutral: Mapped[float | None] = mapped_column(Double)
    sentiment_emitted_at: Mapped[datetime | None] = mapped_column(Timestamp)
    sentiment_stored_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        CheckConstraint("leg IN ('agent', 'customer')", name="leg"),
        Index(None, "call_id", "start_ms"),
    )


class AssistEvent(Base):
    """A hint or alert as first stored: a rule that fired on a partial keeps that first firing."""

    __tablename__ = "assist_events"

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    call_id: Mapped[str] = mapped_column(Text, nullable=False)
    leg: Mapped[str] = mapped_column(Text, nullable=False)
    segment_id: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    rule_id: Mapped[str] = mapped_column(Text, nullable=False)
    rule_version: Mapped[str] = mapped_column(Text, nullable=False)
    on_final: Mapped[bool] = mapped_column(Boolean, nullable=False)
    matched: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)  # the hint, or the alert's message
    severity: Mapped[str | None] = mapped_column(Text)  # alerts only
    segment_emitted_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    emitted_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    stored_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.clock_timestamp()
    )

    __table_args__ = (
        CheckConstraint("kind IN ('hint', 'alert')", name="kind"),
        CheckConstraint("leg IN ('agent', 'customer')", name="leg"),
        Index(None, "call_id", "emitted_at"),
    )


class LegError(Base):
    """A leg that could not be transcribed; keyed by what the event carries, so a replay is one row."""

    __tablename__ = "leg_errors"

    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    leg: Mapped[str] = mapped_column(Text, primary_key=True)
    code: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    retryable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    stored_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.clock_timestamp()
    )
