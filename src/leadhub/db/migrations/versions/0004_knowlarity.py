"""Knowlarity: virtual numbers, calls and callback tasks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa

from leadhub.db import ddl
from leadhub.db.base import NAMING_CONVENTION
from leadhub.db.types import BigIntPK, JSONType, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_md = sa.MetaData(naming_convention=NAMING_CONVENTION)
_now = sa.func.now()
# Stubs so the foreign keys below resolve; create_table is never called on them.
for _name, _key in (("branches", "id"), ("sources", "id"), ("leads_master", "id"), ("customers", "id"),
                   ("intake_events", "id")):  # fmt: skip
    sa.Table(_name, _md, sa.Column(_key, sa.BigInteger, primary_key=True))


def _pk() -> sa.Column[int]:
    return sa.Column("id", BigIntPK, sa.Identity(always=False), primary_key=True)


def _fk(name: str, target: str, *, nullable: bool = True) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, sa.ForeignKey(target), nullable=nullable)


knowlarity_numbers = sa.Table(
    "knowlarity_numbers", _md,
    sa.Column("number", sa.Text, primary_key=True),
    _fk("branch_id", "branches.id"), _fk("source_id", "sources.id"),
    sa.Column("campaign", sa.Text), sa.Column("label", sa.Text),
    sa.Column("created_at", UTCDateTime, server_default=_now),
)  # fmt: skip
calls = sa.Table(
    "calls", _md, _pk(),
    sa.Column("call_uuid", sa.Text, nullable=False, unique=True),
    sa.Column("direction", sa.Text, nullable=False), sa.Column("answered", sa.Boolean, nullable=False),
    sa.Column("duration_seconds", sa.Integer), sa.Column("agent", sa.Text),
    sa.Column("virtual_number", sa.Text), sa.Column("number_mapped", sa.Boolean, nullable=False),
    sa.Column("customer_phone", sa.Text), sa.Column("recording_url", sa.Text),
    sa.Column("started_at", UTCDateTime), sa.Column("ended_at", UTCDateTime),
    sa.Column("origin", sa.Text, nullable=False),
    _fk("lead_id", "leads_master.id"), _fk("customer_id", "customers.id"),
    _fk("intake_event_id", "intake_events.id"),
    sa.Column("raw_payload", JSONType), sa.Column("created_at", UTCDateTime, server_default=_now),
    sa.Index("ix_calls_customer_id_started_at", "customer_id", "started_at"),
    sa.Index("ix_calls_lead_id", "lead_id"),
)  # fmt: skip
callback_tasks = sa.Table(
    "callback_tasks", _md, _pk(),
    _fk("lead_id", "leads_master.id", nullable=False), _fk("customer_id", "customers.id", nullable=False),
    _fk("call_id", "calls.id", nullable=False),
    sa.Column("missed_at", UTCDateTime, nullable=False), sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.Text, nullable=False), _fk("closed_by_call_id", "calls.id"),
    sa.Column("closed_at", UTCDateTime), sa.Column("created_at", UTCDateTime, server_default=_now),
    sa.Index("ux_callback_tasks_open_lead", "lead_id", unique=True,
             postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'")),
    sa.Index("ix_callback_tasks_customer_id", "customer_id"),
)  # fmt: skip


def upgrade() -> None:
    ddl.set_lock_timeout()
    for table in (knowlarity_numbers, calls, callback_tasks):
        ddl.create_table(table)


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
