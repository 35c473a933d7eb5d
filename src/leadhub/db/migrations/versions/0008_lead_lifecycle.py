"""Lead lifecycle: reason master data (seeded with the legacy reasons) and an index on
leads_qualification.lead_id for the open-lead rule.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadhub.db import ddl
from leadhub.db.base import NAMING_CONVENTION
from leadhub.db.types import BigIntPK, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_md = sa.MetaData(naming_convention=NAMING_CONVENTION)

lead_reasons = sa.Table(
    "lead_reasons",
    _md,
    sa.Column("id", BigIntPK, sa.Identity(always=False), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("display_order", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("kind", "code"),
    sa.CheckConstraint("kind IN ('pending', 'lost', 'disqualified')", name="kind"),
)

# Frozen here (leads/reasons.py DEFAULT_REASONS is the same list; a test keeps them equal).
SEED = [
    ("pending", "RNR", "Ringing, no response"),
    ("pending", "CallBackRequested", "Customer asked to call back"),
    ("pending", "CallDisconnected", "Call disconnected"),
    ("pending", "StillThinking", "Still thinking"),
    ("pending", "JustEnquired", "Just enquired"),
    ("lost", "PriceConcern", "Price concern"),
    ("lost", "BoughtCompetitor", "Bought another brand"),
    ("lost", "BoughtElsewhere", "Bought from another dealer"),
    ("lost", "FinanceNotApproved", "Finance not approved"),
    ("lost", "PlanDropped", "Purchase plan dropped or postponed"),
    ("lost", "NoResponse", "No response after repeated attempts"),
    ("disqualified", "NotInterested", "Not interested"),
    ("disqualified", "WrongNumber", "Wrong or invalid number"),
    ("disqualified", "JobSeeker", "Job seeker or vendor, not a buyer"),
    ("disqualified", "DuplicateEnquiry", "Duplicate enquiry"),
    ("disqualified", "OutOfArea", "Outside our service area"),
]


def upgrade() -> None:
    ddl.set_lock_timeout()
    ddl.create_table(lead_reasons)
    now = "CURRENT_TIMESTAMP"
    for order, (kind, code, label) in enumerate(SEED):
        # Inserted once; an admin's later edits (labels, deactivation) are never overwritten.
        op.execute(
            "INSERT INTO lead_reasons (kind, code, label, is_active, display_order, created_at, updated_at) "
            f"VALUES ('{kind}', '{code}', '{label}', true, {order}, {now}, {now}) "
            "ON CONFLICT (kind, code) DO NOTHING"
        )
    ddl.create_index("ix_leads_qualification_lead_id", "leads_qualification", ["lead_id"])


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
