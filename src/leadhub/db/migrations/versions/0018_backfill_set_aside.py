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
from leadhub.db.base import NAMING_CONVENTION
from leadhub.db.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_md = sa.MetaData(naming_convention=NAMING_CONVENTION)

backfill_set_aside = sa.Table(
    "backfill_set_aside", _md,
    sa.Column("name", sa.Text, primary_key=True), sa.Column("kind", sa.Text, nullable=False),
    sa.Column("table_name", sa.Text, nullable=False), sa.Column("definition", sa.Text, nullable=False),
    sa.Column("run_id", sa.BigInteger, nullable=False), sa.Column("set_aside_at", UTCDateTime, nullable=False),
)  # fmt: skip


def upgrade() -> None:
    ddl.set_lock_timeout()
    ddl.create_table(backfill_set_aside)


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
