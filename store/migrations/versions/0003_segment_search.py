"""Full-text search over final segments: a stored tsvector of the segment text, GIN-indexed.

A generated column, not only an expression index: a search for a common word matches thousands
of segments, and ranking them (or rechecking lossy bitmap pages) from an expression index parses
every matching text again; from a stored tsvector it does not (measured: bench/console.py).
PostgreSQL fills the column itself, so the store's writes are unchanged. Adding it rewrites the
segments table once; console/history.py searches this column.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_segments_search_vector"
_CALLS_AGENT = "ix_calls_agent_id_started_at"
_CALLS_QUEUE = "ix_calls_queue_started_at"


def upgrade() -> None:
    op.add_column(
        "segments",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english'::regconfig, coalesce(text, ''))", persisted=True),
            nullable=True,
        ),
    )
    op.create_index(_INDEX, "segments", ["search_vector"], postgresql_using="gin")
    # History lists filter by agent or queue and sort by start: one index each.
    op.create_index(_CALLS_AGENT, "calls", ["agent_id", "started_at"])
    op.create_index(_CALLS_QUEUE, "calls", ["queue", "started_at"])


def downgrade() -> None:
    op.drop_index(_CALLS_QUEUE, table_name="calls")
    op.drop_index(_CALLS_AGENT, table_name="calls")
    op.drop_index(_INDEX, table_name="segments")
    op.drop_column("segments", "search_vector")
