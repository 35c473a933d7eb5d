"""On SQLite, a customer id is never given out twice.

SQLite gives a new row the largest id in the table plus one, so once the customer holding the largest
id was deleted, the next customer made (by live intake, or a later backfill run) took its id. The
backfill deletes the customers it merges or detaches and keeps them in `backfill_log` for `--undo`,
which puts them back with their ids: a customer made since in the same id made that impossible, and
undo linked the restored leads to the newcomer instead. With AUTOINCREMENT SQLite never reuses an id;
its counter starts above every id the table or the backfill log has held.

The table is rebuilt (SQLite cannot change a primary key in place) with the same ids, as SQLite's
documented procedure does: foreign keys off, then every reference checked before the revision
commits. PostgreSQL
identities never reuse a value: nothing to do there.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    context = op.get_context()
    if context.dialect.name != "sqlite":
        return
    if context.as_sql:  # `leadhub db sql` (a script for PostgreSQL): a rebuild needs the live table
        op.execute("-- revision 0016 rebuilds customers on SQLite: run `leadhub db upgrade` there")
        return
    # The migration environment turned foreign keys off for this (a rebuild drops the old table, which
    # SQLite would count as deleting its rows); every reference is checked before this commits.
    with op.batch_alter_table(
        "customers", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass
    broken = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"rebuilding customers left {len(broken)} broken references, e.g. {broken[:3]}")
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
