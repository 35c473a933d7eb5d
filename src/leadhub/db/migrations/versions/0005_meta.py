"""Meta lead ads: pages with their tokens, forms with their branch and field mapping.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa

from leadhub.db import ddl
from leadhub.db.base import NAMING_CONVENTION
from leadhub.db.types import JSONType, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_md = sa.MetaData(naming_convention=NAMING_CONVENTION)

# Referenced tables, only so the foreign keys resolve; they are not created here.
sa.Table("branches", _md, sa.Column("id", sa.BigInteger, primary_key=True))

meta_pages = sa.Table(
    "meta_pages",
    _md,
    sa.Column("page_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("access_token", sa.Text, nullable=False),
    sa.Column("token_error", sa.Text),
    sa.Column("token_error_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
meta_forms = sa.Table(
    "meta_forms",
    _md,
    sa.Column("form_id", sa.Text, primary_key=True),
    sa.Column("page_id", sa.Text, sa.ForeignKey("meta_pages.page_id"), nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("questions", JSONType),
    sa.Column("branch_id", sa.BigInteger, sa.ForeignKey("branches.id")),
    sa.Column("source_label", sa.Text),
    sa.Column("field_map", JSONType),
    sa.Column("sync_enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


def upgrade() -> None:
    ddl.set_lock_timeout()
    ddl.create_table(meta_pages)
    ddl.create_table(meta_forms)


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
