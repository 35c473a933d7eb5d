"""Legacy backfill support: the verbatim legacy phone, customer origin, run state and undo logs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa

from leadhub.db import ddl
from leadhub.db.base import NAMING_CONVENTION
from leadhub.db.types import BigIntPK, JSONType, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_md = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _pk() -> sa.Column[int]:
    return sa.Column("id", BigIntPK, sa.Identity(always=False), primary_key=True)


backfill_runs = sa.Table(
    "backfill_runs", _md, _pk(),
    sa.Column("status", sa.Text, nullable=False), sa.Column("phase", sa.Text, nullable=False),
    sa.Column("cursor", sa.Text), sa.Column("stats", JSONType),
    sa.Column("started_at", UTCDateTime, nullable=False), sa.Column("finished_at", UTCDateTime),
)  # fmt: skip
backfill_lead_log = sa.Table(
    "backfill_lead_log", _md,
    sa.Column("lead_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.BigInteger, nullable=False), sa.Column("old_customer_id", sa.BigInteger),
)  # fmt: skip
backfill_log = sa.Table(
    "backfill_log", _md, _pk(),
    sa.Column("run_id", sa.BigInteger, nullable=False), sa.Column("kind", sa.Text, nullable=False),
    sa.Column("table_name", sa.Text, nullable=False), sa.Column("row_id", sa.BigInteger, nullable=False),
    sa.Column("before", JSONType), sa.Column("restored", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Index("ix_backfill_log_run_kind", "run_id", "kind"),
)  # fmt: skip
backfill_customer_keys = sa.Table(
    "backfill_customer_keys", _md,
    sa.Column("customer_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("e164", sa.Text), sa.Column("reason", sa.Text),
    sa.Index("ix_backfill_customer_keys_e164", "e164"),
)  # fmt: skip
backfill_customer_attrs = sa.Table(
    "backfill_customer_attrs", _md,
    sa.Column("customer_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("first_key", sa.Text, nullable=False), sa.Column("first_at", UTCDateTime, nullable=False),
    sa.Column("full_name", sa.Text), sa.Column("name_key", sa.Text),
    sa.Column("city", sa.Text), sa.Column("city_key", sa.Text),
)  # fmt: skip


def upgrade() -> None:
    ddl.set_lock_timeout()
    for table in (
        backfill_runs,
        backfill_lead_log,
        backfill_log,
        backfill_customer_keys,
        backfill_customer_attrs,
    ):
        ddl.create_table(table)
    ddl.add_column(
        "leads_master", "phone_number_legacy", "text" if ddl._dialect() == "postgresql" else "TEXT"
    )
    ddl.add_column("customers", "origin", "text" if ddl._dialect() == "postgresql" else "TEXT")


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
