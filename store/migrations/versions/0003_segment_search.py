"""Full-text search over final segments: a GIN index on the segment text's tsvector expression.

An expression index (not a stored column) keeps the store's writes unchanged; the console's
search (console/history.py) uses exactly this expression, so PostgreSQL can use the index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_segments_text_tsv"
_CALLS_AGENT = "ix_calls_agent_id_started_at"
_CALLS_QUEUE = "ix_calls_queue_started_at"


def upgrade() -> None:
    op.create_index(
        _INDEX,
        "segments",
        [sa.text("to_tsvector('english'::regconfig, coalesce(text, ''))")],
        postgresql_using="gin",
    )
    # History lists filter by agent or queue and sort by start: one index each.
    op.create_index(_CALLS_AGENT, "calls", ["agent_id", "started_at"])
    op.create_index(_CALLS_QUEUE, "calls", ["queue", "started_at"])


def downgrade() -> None:
    op.drop_index(_CALLS_QUEUE, table_name="calls")
    op.drop_index(_CALLS_AGENT, table_name="calls")
    op.drop_index(_INDEX, table_name="segments")
