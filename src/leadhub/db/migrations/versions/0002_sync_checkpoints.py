"""Poller checkpoints per channel and scope.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa

from leadhub.db import ddl
from leadhub.db.base import NAMING_CONVENTION
from leadhub.db.types import BigIntPK, JSONType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_md = sa.MetaData(naming_convention=NAMING_CONVENTION)

sync_checkpoints = sa.Table(
    "sync_checkpoints",
    _md,
    sa.Column("id", BigIntPK, sa.Identity(always=False), primary_key=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("cursor", UTCDateTime),
    sa.Column("state", JSONType),
    sa.Column("last_run_at", UTCDateTime),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("error_kind", sa.Text),
    sa.UniqueConstraint("channel", "scope"),
)


def upgrade() -> None:
    ddl.set_lock_timeout()
    ddl.create_table(sync_checkpoints)


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
