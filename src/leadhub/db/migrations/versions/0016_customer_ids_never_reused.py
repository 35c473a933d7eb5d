"""On SQLite, a customer id is never given out twice.

SQLite gives a new row the largest id in the table plus one, so once the customer holding the largest
id was deleted, the next customer made (by live intake, or a later backfill run) took its id. The
backfill deletes the customers it merges or detaches and keeps them in `backfill_log` for `--undo`,
which puts them back with their ids: a customer made since in the same id made that impossible, and
undo linked the restored leads to the newcomer instead. With AUTOINCREMENT SQLite never reuses an id;
its counter starts above every id the table or the backfill log has held.

The table is rebuilt (SQLite cannot change a primary key in place) with the same ids, as SQLite's
documented procedure does: foreign keys off, then every reference checked before the revision
commits. PostgreSQL identities never reuse a value: nothing to do there.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadhub.db.types import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _customers() -> sa.Table:
    """`customers` as revisions 0001 and 0003 made it, for the offline script (nothing to reflect)."""
    return sa.Table(
        "customers", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("phone_number_normalized", sa.Text, nullable=False, unique=True),
        sa.Column("full_name", sa.Text), sa.Column("email", sa.Text), sa.Column("city", sa.Text),
        sa.Column("created_at", UTCDateTime, server_default=sa.func.now()),
        sa.Column("updated_at", UTCDateTime, server_default=sa.func.now()),
        sa.Column("origin", sa.Text),
    )  # fmt: skip


def _rebuild(autoincrement: bool) -> None:
    context = op.get_context()
    if context.dialect.name != "sqlite":
        return
    # `leadhub db sql` writes a script for the sqlite3 shell (foreign keys off by default there), from
    # the table as the revisions made it; online, the migration environment turned them off (a
    # rebuild drops the old table, which SQLite would count as deleting its rows), and every reference
    # to customers is checked before this commits.
    offline = context.as_sql
    if not offline and op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "revision 0016 must run with foreign keys off (leadhub's migration environment does it)"
        )
    with op.batch_alter_table(
        "customers",
        recreate="always",
        table_kwargs={"sqlite_autoincrement": autoincrement},
        copy_from=_customers() if offline else None,
    ):
        pass
    if not offline:
        # Only references to customers: rows the old app left pointing elsewhere are not this revision's.
        check = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").all()
        broken = [row for row in check if row[2] == "customers"]
        if broken:
            raise RuntimeError(
                f"rebuilding customers left {len(broken)} broken references, e.g. {broken[:3]}"
            )
    if autoincrement:
        op.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT max(row_id) FROM backfill_log "
            "WHERE table_name = 'customers'), 0)) WHERE name = 'customers'"
        )
        op.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'customers', coalesce((SELECT max(row_id) "
            "FROM backfill_log WHERE table_name = 'customers'), 0) "
            "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'customers')"
        )


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
