"""An index for the reception desk's day: walk-in visits by time.

`GET /api/queues/walkins_today` reads the walk-in events of today's business day from the intake
inbox. The index is partial (walk-in rows only), so the webhook and sync paths, which write most inbox
rows, do not maintain it. Built CONCURRENTLY on PostgreSQL.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

from leadhub.db import ddl

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.set_lock_timeout()
    ddl.create_index(
        "ix_intake_events_walk_in_received_at", "intake_events", ["received_at"], where="source = 'walk_in'"
    )


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
