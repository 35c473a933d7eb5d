"""Where the backfill keeps the indexes and foreign keys it sets aside while it writes every lead.

On PostgreSQL a big leads phase drops leadhub's staff-list indexes on `leads_master` and the foreign
keys its writes check, and builds them again (CONCURRENTLY, then validated) when it ends
(leadhub.migration.set_aside). Each one's definition is written here, and committed, before it is
dropped, and the row is removed only once it is back: a run killed in between puts it back on its
next run, or `--undo` does. A new, empty table: nothing else is touched.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from leadhub.db import ddl
from leadhub.db.set_aside_table import SET_ASIDE

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.set_lock_timeout()
    ddl.create_table(SET_ASIDE)  # an earlier revision may have made it already (ddl.create_index)


def downgrade() -> None:
    """Only while nothing is set aside: a kept definition is the only copy of what was dropped."""
    if context.is_offline_mode():
        if op.get_context().dialect.name == "postgresql":
            op.execute(
                "DO $$ BEGIN IF EXISTS (SELECT 1 FROM backfill_set_aside) THEN RAISE EXCEPTION "
                "'backfill_set_aside holds definitions: run leadhub backfill-customers (or --undo) to put them back "
                "first'; END IF; END $$"
            )
    else:
        kept = op.get_bind().execute(sa.text("SELECT count(*) FROM backfill_set_aside")).scalar_one()
        if kept:
            raise RuntimeError(
                f"backfill_set_aside holds {kept} definitions: run `leadhub backfill-customers` (or --undo) to "
                "put them back first"
            )
    op.execute("DROP TABLE IF EXISTS backfill_set_aside")
