"""An index for the backfill's before-images: customer rows already logged, by id.

Each leads batch of the repair path logs the before-image of the guide-made customers it is about to
recompute, once per customer. Without an index on `row_id`, finding which of them are logged already
hashed every `customer_before` row of `backfill_log` in every batch (about 766,000 rows by the end of a
1,000,000-lead repair): the batch's time grew with the run. The index is partial (before-images only),
so merge, detach and reference logging do not maintain it. Built CONCURRENTLY on PostgreSQL.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from __future__ import annotations

from leadhub.db import ddl

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.set_lock_timeout()
    ddl.create_index(
        "ix_backfill_log_customer_before",
        "backfill_log",
        ["row_id"],
        where="kind = 'customer_before' AND table_name = 'customers'",
    )


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
