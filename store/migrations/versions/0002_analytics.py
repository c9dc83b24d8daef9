"""Analytics: conversation metrics, sentiment trends, redaction audit, compliance state, rule-set versions.

Also assist_events.origin (live | replay), so a replay's events sit beside the live ones.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("clock_timestamp()")


def _stored_at() -> sa.Column:
    return sa.Column("stored_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False)


def upgrade() -> None:
    op.add_column(
        "assist_events", sa.Column("origin", sa.Text(), server_default="live", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_assist_events_origin"), "assist_events", "origin IN ('live', 'replay')"
    )
    op.create_table(
        "conversation_metrics",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("elapsed_ms", sa.BigInteger(), nullable=False),
        sa.Column("call_ended", sa.Boolean(), nullable=False),
        sa.Column("talk_ms", sa.BigInteger(), nullable=False),
        sa.Column("non_talk_ms", sa.BigInteger(), nullable=False),
        sa.Column("longest_silence_ms", sa.BigInteger(), nullable=False),
        sa.Column("overtalk_ms", sa.BigInteger(), nullable=False),
        sa.Column("interruptions", sa.BigInteger(), nullable=False),
        sa.Column("agent", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("customer", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("emitted_at", sa.DateTime(timezone=True), nullable=False),
        _stored_at(),
        sa.PrimaryKeyConstraint("call_id", "elapsed_ms", name=op.f("pk_conversation_metrics")),
    )
    op.create_table(
        "sentiment_trends",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("elapsed_ms", sa.BigInteger(), nullable=False),
        sa.Column("call_ended", sa.Boolean(), nullable=False),
        sa.Column("quarters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("trend", sa.Double(), nullable=True),
        sa.Column("rolling", sa.Double(), nullable=True),
        sa.Column("rolling_window_ms", sa.BigInteger(), nullable=False),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("emitted_at", sa.DateTime(timezone=True), nullable=False),
        _stored_at(),
        sa.CheckConstraint("scope IN ('agent', 'customer', 'call')", name=op.f("ck_sentiment_trends_scope")),
        sa.PrimaryKeyConstraint("call_id", "scope", "elapsed_ms", name=op.f("pk_sentiment_trends")),
    )
    op.create_table(
        "redaction_audit",
        sa.Column("segment_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("leg", sa.Text(), nullable=False),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _stored_at(),
        sa.CheckConstraint("stage IN ('analyze', 'store')", name=op.f("ck_redaction_audit_stage")),
        sa.PrimaryKeyConstraint("segment_id", "stage", name=op.f("pk_redaction_audit")),
    )
    op.create_index(op.f("ix_redaction_audit_call_id"), "redaction_audit", ["call_id"], unique=False)
    op.create_table(
        "compliance_state",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("rule_version", sa.Text(), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=True),
        sa.Column("call_ended", sa.Boolean(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("emitted_at", sa.DateTime(timezone=True), nullable=False),
        _stored_at(),
        sa.CheckConstraint(
            "status IN ('pending', 'met', 'missed', 'not_applicable')", name=op.f("ck_compliance_state_status")
        ),
        sa.PrimaryKeyConstraint("call_id", "rule_version", "item_id", name=op.f("pk_compliance_state")),
    )
    op.create_table(
        "rule_set_versions",
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("digest", sa.Text(), nullable=True),
        _stored_at(),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_rule_set_versions")),
    )


def downgrade() -> None:
    op.drop_table("rule_set_versions")
    op.drop_table("compliance_state")
    op.drop_index(op.f("ix_redaction_audit_call_id"), table_name="redaction_audit")
    op.drop_table("redaction_audit")
    op.drop_table("sentiment_trends")
    op.drop_table("conversation_metrics")
    op.drop_constraint(op.f("ck_assist_events_origin"), "assist_events", type_="check")
    op.drop_column("assist_events", "origin")
