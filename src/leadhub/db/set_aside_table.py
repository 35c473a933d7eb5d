"""The backfill's set-aside bookkeeping, shared by the upgrade (leadhub.db.ddl) and the backfill
(leadhub.migration.set_aside). Kept apart from ddl so that importing the backfill, which every CLI
command does, does not import alembic."""

from __future__ import annotations

import sqlalchemy as sa

from leadhub.db.types import UTCDateTime

# Leads still to backfill from which a leads_master index built only for the staff is left to the
# backfill; the backfill's `auto` set-aside uses the same count (leadhub.migration.set_aside).
BACKFILL_PENDING_LEADS = 100_000
# Leads past :after the backfill has not written yet (every lead it reaches gets an enquiry time),
# counted up to :n only.
PENDING_LEADS = "SELECT count(*) FROM (SELECT 1 FROM leads_master WHERE id > :after AND enquired_at IS NULL LIMIT :n) AS s"
# leadhub.migration.set_aside's table: revision 0018 creates it, and so does an earlier revision that
# leaves an index to the backfill. KEEP records one dropped (or not yet built) object in it.
SET_ASIDE = sa.Table(
    "backfill_set_aside", sa.MetaData(),
    sa.Column("name", sa.Text, primary_key=True), sa.Column("kind", sa.Text, nullable=False),
    sa.Column("table_name", sa.Text, nullable=False), sa.Column("definition", sa.Text, nullable=False),
    sa.Column("run_id", sa.BigInteger, nullable=False), sa.Column("set_aside_at", UTCDateTime, nullable=False),
)  # fmt: skip
KEEP = (
    "INSERT INTO backfill_set_aside (name, kind, table_name, definition, run_id, set_aside_at) "
    "VALUES (:name, :kind, :table, :definition, :run, :at) ON CONFLICT (name) DO NOTHING"
)
# Whether the index :name is valid (no row: there is none). False: a build or drop stopped half-way.
INDEX_VALID = (
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"
)
