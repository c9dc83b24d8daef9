"""Initial schema: calls, segments (final text + final sentiment), assist events, leg errors.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 21:11:09.013067
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('assist_events',
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('call_id', sa.Text(), nullable=False),
    sa.Column('leg', sa.Text(), nullable=False),
    sa.Column('segment_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('rule_id', sa.Text(), nullable=False),
    sa.Column('rule_version', sa.Text(), nullable=False),
    sa.Column('on_final', sa.Boolean(), nullable=False),
    sa.Column('matched', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('severity', sa.Text(), nullable=True),
    sa.Column('segment_emitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('emitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), server_default=sa.text('clock_timestamp()'), nullable=False),
    sa.CheckConstraint("kind IN ('hint', 'alert')", name=op.f('ck_assist_events_kind')),
    sa.CheckConstraint("leg IN ('agent', 'customer')", name=op.f('ck_assist_events_leg')),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_assist_events'))
    )
    op.create_index(op.f('ix_assist_events_call_id_emitted_at'), 'assist_events', ['call_id', 'emitted_at'], unique=False)
    op.create_table('calls',
    sa.Column('call_id', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('agent_id', sa.Text(), nullable=True),
    sa.Column('queue', sa.Text(), nullable=True),
    sa.Column('direction', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('clock_timestamp()'), nullable=False),
    sa.CheckConstraint("direction IN ('inbound', 'outbound')", name=op.f('ck_calls_direction')),
    sa.PrimaryKeyConstraint('call_id', name=op.f('pk_calls'))
    )
    op.create_index(op.f('ix_calls_started_at'), 'calls', ['started_at'], unique=False)
    op.create_table('leg_errors',
    sa.Column('call_id', sa.Text(), nullable=False),
    sa.Column('leg', sa.Text(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retryable', sa.Boolean(), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), server_default=sa.text('clock_timestamp()'), nullable=False),
    sa.PrimaryKeyConstraint('call_id', 'leg', 'code', 'at', name=op.f('pk_leg_errors'))
    )
    op.create_table('segments',
    sa.Column('segment_id', sa.Text(), nullable=False),
    sa.Column('call_id', sa.Text(), nullable=False),
    sa.Column('leg', sa.Text(), nullable=False),
    sa.Column('start_ms', sa.BigInteger(), nullable=True),
    sa.Column('end_ms', sa.BigInteger(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('confidence', sa.Double(), nullable=True),
    sa.Column('audio_captured_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('audio_received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('emitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('speech_ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stored_at', sa.DateTime(timezone=True), server_default=sa.text('clock_timestamp()'), nullable=True),
    sa.Column('sentiment_compound', sa.Double(), nullable=True),
    sa.Column('sentiment_positive', sa.Double(), nullable=True),
    sa.Column('sentiment_negative', sa.Double(), nullable=True),
    sa.Column('sentiment_neutral', sa.Double(), nullable=True),
    sa.Column('sentiment_emitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sentiment_stored_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("leg IN ('agent', 'customer')", name=op.f('ck_segments_leg')),
    sa.PrimaryKeyConstraint('segment_id', name=op.f('pk_segments'))
    )
    op.create_index(op.f('ix_segments_call_id_start_ms'), 'segments', ['call_id', 'start_ms'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_segments_call_id_start_ms'), table_name='segments')
    op.drop_table('segments')
    op.drop_table('leg_errors')
    op.drop_index(op.f('ix_calls_started_at'), table_name='calls')
    op.drop_table('calls')
    op.drop_index(op.f('ix_assist_events_call_id_emitted_at'), table_name='assist_events')
    op.drop_table('assist_events')
