"""Tables of the store, one per kind of fact: calls, segments, assist events, metrics, audit, checklists.

Calls, final segments (with their final sentiment), assist events, leg errors, conversation
metrics, sentiment trends, redaction audit, compliance state and rule-set versions.

There are no foreign keys between them: the transcript and assist topics are consumed
independently, so a segment, its sentiment or a call's end can reach the database before the
call's start does. Every table is keyed by the deterministic id its topic contract defines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    Index,
    MetaData,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
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
        Index(None, "agent_id", "started_at"),  # history by agent (migration 0003)
        Index(None, "queue", "started_at"),  # history by queue (migration 0003)
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
    # Full-text search (console/history.py): PostgreSQL computes it from `text` (migration 0003).
    search_vector: Mapped[str | None] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english'::regconfig, COALESCE(text, ''::text))", persisted=True)
    )

    __table_args__ = (
        CheckConstraint("leg IN ('agent', 'customer')", name="leg"),
        Index(None, "call_id", "start_ms"),
        Index(None, "search_vector", postgresql_using="gin"),
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
    origin: Mapped[str] = mapped_column(Text, nullable=False, server_default="live")  # live | replay
    segment_emitted_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    emitted_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    stored_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.clock_timestamp()
    )

    __table_args__ = (
        CheckConstraint("kind IN ('hint', 'alert')", name="kind"),
        CheckConstraint("origin IN ('live', 'replay')", name="origin"),
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


class ConversationMetric(Base):
    """A call's conversation metrics at one call position (analyze.conversation); the end has call_ended."""

    __tablename__ = "conversation_metrics"

    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    elapsed_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    call_ended: Mapped[bool] = mapped_column(Boolean, nullable=False)
    talk_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    non_talk_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    longest_silence_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    overtalk_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    interruptions: Mapped[int] = mapped_column(BigInteger, nullable=False)
    agent: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)  # LegConversation fields
    customer: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    emitted_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    stored_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.clock_timestamp()
    )


class SentimentTrendRow(Base):
    """Sentiment per quarter, trend and rolling mean of one scope (agent, customer, call) at a position."""

    __tablename__ = "sentiment_trends"

    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    elapsed_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    call_ended: Mapped[bool] = mapped_column(Boolean, nullable=False)
    quarters: Mapped[list[float | None]] = mapped_column(JSONB, nullable=False)
    trend: Mapped[float | None] = mapped_column(Double)
    rolling: Mapped[float | None] = mapped_column(Double)
    rolling_window_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    samples: Mapped[int] = mapped_column(BigInteger, nullable=False)
    emitted_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    stored_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.clock_timestamp()
    )

    __table_args__ = (CheckConstraint("scope IN ('agent', 'customer', 'call')", name="scope"),)


class RedactionAuditRow(Base):
    """What kinds of personal data were redacted from a segment, by which stage: counts, never values."""

    __tablename__ = "redaction_audit"

    segment_id: Mapped[str] = mapped_column(Text, primary_key=True)
    stage: Mapped[str] = mapped_column(
        Text, primary_key=True
    )  # analyze (assist topic) | store (segments.text)
    call_id: Mapped[str] = mapped_column(Text, nullable=False)
    leg: Mapped[str] = mapped_column(Text, nullable=False)
    counts: Mapped[dict[str, int]] = mapped_column(JSONB, nullable=False)
    stored_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.clock_timestamp()
    )

    __table_args__ = (
        CheckConstraint("stage IN ('analyze', 'store')", name="stage"),
        Index(None, "call_id"),
    )


class ComplianceStateRow(Base):
    """One checklist step of a call under one rule-set version; latest status wins."""

    __tablename__ = "compliance_state"

    call_id: Mapped[str] = mapped_column(Text, primary_key=True)
    rule_version: Mapped[str] = mapped_column(Text, primary_key=True)
    item_id: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    at_ms: Mapped[int | None] = mapped_column(BigInteger)
    call_ended: Mapped[bool] = mapped_column(Boolean, nullable=False)
    event_id: Mapped[str] = mapped_column(Text, nullable=False)
    emitted_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    stored_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.clock_timestamp()
    )

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'met', 'missed', 'not_applicable')", name="status"),
    )


class RuleSetVersion(Base):
    """A rule-set version seen on the assist topic or used by a replay; content where known."""

    __tablename__ = "rule_set_versions"

    version: Mapped[str] = mapped_column(Text, primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    content: Mapped[str | None] = mapped_column(Text)  # the YAML, when a replay registered it
    digest: Mapped[str | None] = mapped_column(Text)  # sha256 of the content
    stored_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, server_default=func.clock_timestamp()
    )
