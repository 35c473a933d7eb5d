"""Idempotent, lock-aware DDL for Alembic migrations on SQLite and PostgreSQL.

Every step can run on an empty database, on an adopted legacy database (which may already have the
migration guide's `customers` table), and again after a partial run. On PostgreSQL nothing rewrites or
long-locks a big table: new columns are nullable with no default, foreign keys are added NOT VALID and
validated in their own transaction, and indexes are built CONCURRENTLY (../shared/notes/postgres.md §1.3).
Each step also works in offline mode (`leadhub db sql`), where the database cannot be inspected.
"""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import context, op
from sqlalchemy import Table, inspect, text
from sqlalchemy.schema import CreateIndex, CreateTable

from leadhub.db.set_aside_table import BACKFILL_PENDING_LEADS, INDEX_VALID, KEEP, PENDING_LEADS, SET_ASIDE

LOCK_TIMEOUT = "5s"


def _dialect() -> str:
    return op.get_context().dialect.name


def _offline() -> bool:
    return context.is_offline_mode()


def _q(name: str) -> str:
    return op.get_context().dialect.identifier_preparer.quote(name)


def set_lock_timeout() -> None:
    """Never queue an ACCESS EXCLUSIVE lock behind a long transaction and stall every writer."""
    if _dialect() == "postgresql":
        op.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")


def create_table(table: Table) -> None:
    op.execute(CreateTable(table, if_not_exists=True))
    for index in table.indexes:
        op.execute(CreateIndex(index, if_not_exists=True))


def add_column(table: str, column: str, type_sql: str, *, references: str | None = None) -> None:
    """A nullable column with no default: metadata-only on PostgreSQL. `references` is 'table(col)'."""
    if _dialect() == "postgresql":
        op.execute(f"ALTER TABLE {_q(table)} ADD COLUMN IF NOT EXISTS {_q(column)} {type_sql}")
        return
    if not _offline():
        existing = {c["name"] for c in inspect(op.get_bind()).get_columns(table)}
        if column in existing:
            return
    # SQLite cannot add a constraint later, but accepts REFERENCES on a nullable added column.
    ref = f" REFERENCES {references}" if references else ""
    op.execute(f"ALTER TABLE {_q(table)} ADD COLUMN {_q(column)} {type_sql}{ref}")


def add_foreign_key(table: str, name: str, column: str, ref_table: str, ref_column: str) -> None:
    """PostgreSQL: add NOT VALID (no scan), then VALIDATE in a transaction of its own (no write lock).

    The name is PostgreSQL's default, so a key the migration guide already added is recognised.
    """
    if _dialect() != "postgresql":
        return
    op.execute(
        f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = '{name}'
                 AND conrelid = '{table}'::regclass) THEN
    ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(name)} FOREIGN KEY ({_q(column)})
      REFERENCES {_q(ref_table)} ({_q(ref_column)}) NOT VALID;
  END IF;
END $$"""
    )
    with op.get_context().autocommit_block():
        op.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        op.execute(f"ALTER TABLE {_q(table)} VALIDATE CONSTRAINT {_q(name)}")


def _backfill_pending() -> bool:
    """PostgreSQL online: at least BACKFILL_PENDING_LEADS leads are still for the backfill to write."""
    found = op.get_bind().execute(text(PENDING_LEADS), {"after": 0, "n": BACKFILL_PENDING_LEADS}).scalar_one()
    return int(found) >= BACKFILL_PENDING_LEADS


def create_index(
    name: str,
    table: str,
    columns: list[str],
    *,
    unique: bool = False,
    where: str | None = None,
    leave_to_backfill: bool = False,
) -> None:
    """PostgreSQL: CREATE INDEX CONCURRENTLY outside a transaction, replacing an invalid leftover.
    `where` makes a partial index (a literal SQL predicate both databases accept).

    `leave_to_backfill` (a leads_master index only leadhub's staff lists read): on a database whose
    backfill is still to come, the index is not built now but written to `backfill_set_aside`, which the
    backfill builds from when its leads phase ends. Built now, it would get an entry for every lead the
    backfill rewrites, and the backfill would drop it for that phase anyway (leadhub.migration.set_aside).
    """
    cols = ", ".join(_q(c) for c in columns)
    kind = "UNIQUE INDEX" if unique else "INDEX"
    partial = f" WHERE {where}" if where else ""
    if _dialect() != "postgresql":
        op.execute(f"CREATE {kind} IF NOT EXISTS {_q(name)} ON {_q(table)} ({cols}){partial}")
        return
    if _offline():
        with op.get_context().autocommit_block():
            op.execute(f"-- if a failed earlier run left {name} INVALID: DROP INDEX CONCURRENTLY {name};")
            op.execute(
                f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {_q(name)} ON {_q(table)} ({cols}){partial}"
            )
        return
    valid = op.get_bind().execute(text(INDEX_VALID), {"name": name}).scalar_one_or_none()
    if valid is True:
        return
    if valid is False:  # a failed earlier build left it INVALID
        with op.get_context().autocommit_block():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_q(name)}")
    if leave_to_backfill and _backfill_pending():
        create_table(SET_ASIDE)
        op.get_bind().execute(text(KEEP), {
            "name": name, "kind": "index", "table": table, "run": 0, "at": datetime.now(UTC),
            "definition": f"CREATE {kind} {_q(name)} ON {_q(table)} ({cols}){partial}",
        })  # fmt: skip
        return
    with op.get_context().autocommit_block():
        op.execute(f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {_q(name)} ON {_q(table)} ({cols}){partial}")


def drop_index(name: str) -> None:
    """PostgreSQL: DROP INDEX CONCURRENTLY outside a transaction (waits for readers, blocks no writer)."""
    if _dialect() != "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {_q(name)}")
        return
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_q(name)}")
        bind = None if _offline() else op.get_bind()
        if bind is not None and bind.execute(text("SELECT to_regclass('backfill_set_aside')")).scalar_one():
            # an index left to the backfill is not built later either
            bind.execute(text("DELETE FROM backfill_set_aside WHERE name = :name"), {"name": name})
