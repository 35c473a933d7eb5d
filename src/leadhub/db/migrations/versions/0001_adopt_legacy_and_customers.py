"""Adopt the legacy tables, add customers, the lead's customer link and enquiry time, and the inbox.

On an empty database this creates everything. On a legacy database (../shared/legacy/schema.sql),
with or without the migration guide's `customers` table, it adds only what is missing and changes no
existing row. Table shapes are frozen here, not imported from the models, so later model changes
cannot change what this revision does.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa

from leadhub.db import ddl
from leadhub.db.base import NAMING_CONVENTION
from leadhub.db.types import BigIntPK, JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_md = sa.MetaData(naming_convention=NAMING_CONVENTION)
_now = sa.func.now()


def _pk(name: str = "id") -> sa.Column[int]:
    return sa.Column(name, BigIntPK, sa.Identity(always=False), primary_key=True)


def _ts(name: str, *, default: bool = True) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime, server_default=_now if default else None)


def _fk(name: str, target: str, *, nullable: bool = True) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, sa.ForeignKey(target), nullable=nullable)


_text = sa.Text
_bool = sa.Boolean
_true = sa.text("true")
_false = sa.text("false")

users = sa.Table(
    "users", _md, _pk("user_id"),
    sa.Column("username", _text, nullable=False, unique=True),
    sa.Column("password_hash", _text),
    sa.Column("role", _text, nullable=False),
    sa.Column("full_name", _text), sa.Column("phone_number", _text), sa.Column("email", _text),
    sa.Column("status", _bool, nullable=False, server_default=_true),
    _ts("created_at"), _ts("updated_at"),
)  # fmt: skip
branches = sa.Table(
    "branches", _md, _pk(),
    sa.Column("name", _text, nullable=False), sa.Column("city", _text),
    sa.Column("is_active", _bool, nullable=False, server_default=_true),
    _ts("created_at"), _ts("updated_at"),
)  # fmt: skip
branch_members = sa.Table(
    "branch_members", _md, _pk(),
    _fk("branch_id", "branches.id", nullable=False), _fk("user_id", "users.user_id"),
    sa.Column("contact_name", _text), _fk("manager_id", "branch_members.id"),
    sa.Column("role", _text, nullable=False),
    sa.Column("is_active", _bool, nullable=False, server_default=_true),
    _ts("created_at"), _ts("updated_at"),
    sa.CheckConstraint("role IN ('TL', 'RM', 'CRE', 'Receptionist')", name="role_check"),
)  # fmt: skip
sources = sa.Table(
    "sources", _md, _pk(),
    sa.Column("display_name", _text, nullable=False), sa.Column("source_type", _text),
    sa.Column("webhook_secret", _text), sa.Column("field_mapping", JSONType),
    sa.Column("total_leads_count", sa.Integer, server_default=sa.text("0")),
    sa.Column("todays_leads_count", sa.Integer, server_default=sa.text("0")),
    _ts("created_at"),
)  # fmt: skip
leads_master = sa.Table(
    "leads_master", _md, _pk(),
    sa.Column("full_name", _text), sa.Column("phone_number_normalized", _text),
    sa.Column("alternate_phone_number", _text), _fk("source_id", "sources.id"),
    sa.Column("external_lead_id", _text), _fk("assigned_to", "users.user_id"), _ts("assigned_at", default=False),
    sa.Column("status", _text), _ts("next_followup_at", default=False),
    sa.Column("total_attempts", sa.Integer, server_default=sa.text("0")),
    sa.Column("is_qualified", _bool, server_default=_false),
    sa.Column("IS_LOST", _bool), sa.Column("Lead_Remarks", _text), sa.Column("raw_payload", JSONType),
    sa.Column("raw_model_interested", _text), sa.Column("raw_customer_location", _text),
    _fk("branch_id", "branches.id"), _ts("created_at"), _ts("updated_at"),
    sa.Index("idx_leads_master_phone_normalized", "phone_number_normalized"),
)  # fmt: skip
leads_qualification = sa.Table(
    "leads_qualification", _md, _pk(),
    _fk("lead_id", "leads_master.id", nullable=False),
    *(sa.Column(c, _text) for c in ("qualified_category", "model_interested", "variant", "profession",
                                     "customer_location", "purchase_timeline", "finance_type")),
    sa.Column("testdrive_date", sa.Date),
    sa.Column("exchange_vehicle_make", _text), sa.Column("exchange_vehicle_model", _text),
    sa.Column("exchange_vehicle_year", sa.Integer), sa.Column("lead_category", _text),
    _ts("next_followup_at", default=False), sa.Column("remarks", _text),
    _fk("qualified_by", "users.user_id"), _ts("qualified_at", default=False),
    sa.Column("review_status", _text, server_default=sa.text("'pending'")),
    _fk("reviewed_by", "users.user_id"), _ts("reviewed_at", default=False), sa.Column("dms_id", _text),
    _fk("branch_id", "branches.id"), sa.Column("tl_id", sa.BigInteger), sa.Column("rm_id", sa.BigInteger),
    sa.Column("TEST_DRIVE", _bool), sa.Column("BOOKED", _bool), sa.Column("RETAILED", _bool),
    _ts("updated_at"),
)  # fmt: skip
leads_logs = sa.Table(
    "leads_logs", _md, _pk(),
    _fk("lead_id", "leads_master.id", nullable=False),
    sa.Column("old_status", _text), sa.Column("new_status", _text), sa.Column("remarks", _text),
    sa.Column("attempt_no", sa.Integer), _fk("created_by", "users.user_id"), sa.Column("metadata", JSONType),
    _ts("created_at"),
)  # fmt: skip
lead_sources_history = sa.Table(
    "lead_sources_history", _md, _pk(),
    _fk("lead_id", "leads_master.id", nullable=False), _fk("source_id", "sources.id"),
    sa.Column("external_id", _text), sa.Column("raw_payload", JSONType), _ts("received_at"),
    sa.Column("is_primary", _bool, server_default=_false),
)  # fmt: skip
customers = sa.Table(
    "customers", _md, _pk(),
    sa.Column("phone_number_normalized", _text, nullable=False, unique=True),
    sa.Column("full_name", _text), sa.Column("email", _text), sa.Column("city", _text),
    _ts("created_at"), _ts("updated_at"),
)  # fmt: skip
intake_events = sa.Table(
    "intake_events", _md, _pk(),
    sa.Column("source", _text, nullable=False), sa.Column("external_id", _text, nullable=False),
    sa.Column("status", _text, nullable=False), sa.Column("outcome", _text), sa.Column("reason", _text),
    sa.Column("intake", JSONType), sa.Column("raw_payload", JSONType),
    _fk("lead_id", "leads_master.id"), _fk("customer_id", "customers.id"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("received_at", UTCDateTime, nullable=False, server_default=_now),
    _ts("processed_at", default=False),
    sa.UniqueConstraint("source", "external_id"),
    sa.Index("ix_intake_events_open", "status", "received_at",
             postgresql_where=sa.text("status <> 'processed'"), sqlite_where=sa.text("status <> 'processed'")),
)  # fmt: skip
source_channels = sa.Table(
    "source_channels", _md,
    sa.Column("channel", _text, primary_key=True),
    _fk("source_id", "sources.id", nullable=False),
)  # fmt: skip

_LEGACY = (users, branches, branch_members, sources, leads_master, leads_qualification, leads_logs,
           lead_sources_history)  # fmt: skip


def upgrade() -> None:
    ddl.set_lock_timeout()
    for table in (*_LEGACY, customers, intake_events, source_channels):
        ddl.create_table(table)
    bigint = "bigint" if ddl._dialect() == "postgresql" else "BIGINT"
    timestamptz = "timestamptz" if ddl._dialect() == "postgresql" else "DATETIME"
    ddl.add_column("leads_master", "customer_id", bigint, references="customers(id)")
    ddl.add_column("leads_master", "enquired_at", timestamptz)
    ddl.add_foreign_key("leads_master", "leads_master_customer_id_fkey", "customer_id", "customers", "id")
    ddl.create_index("idx_leads_master_customer_id", "leads_master", ["customer_id"])


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
