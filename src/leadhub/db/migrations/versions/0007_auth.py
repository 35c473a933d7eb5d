"""Staff auth: roles and their permissions as data, refresh tokens, failed logins, API keys.

Seeds the built-in (legacy) roles with the permission sets below, frozen here; later changes to
them are data (`leadhub roles grant|revoke`). Touches no legacy table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadhub.db import ddl
from leadhub.db.base import NAMING_CONVENTION
from leadhub.db.types import BigIntPK, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_md = sa.MetaData(naming_convention=NAMING_CONVENTION)

sa.Table("users", _md, sa.Column("user_id", sa.BigInteger, primary_key=True))

roles = sa.Table(
    "roles",
    _md,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("built_in", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("description", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
)
role_permissions = sa.Table(
    "role_permissions",
    _md,
    sa.Column("role", sa.Text, sa.ForeignKey("roles.name"), primary_key=True),
    sa.Column("permission", sa.Text, primary_key=True),
)
refresh_tokens = sa.Table(
    "refresh_tokens",
    _md,
    sa.Column("id", BigIntPK, sa.Identity(always=False), primary_key=True),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    sa.Column("family_id", sa.Text, nullable=False),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.user_id"), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.Index("ix_refresh_tokens_family_id", "family_id"),
)
login_failures = sa.Table(
    "login_failures",
    _md,
    sa.Column("id", BigIntPK, sa.Identity(always=False), primary_key=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("failed_at", UTCDateTime, nullable=False),
    sa.Index("ix_login_failures_scope_key_failed_at", "scope", "key", "failed_at"),
)
api_keys = sa.Table(
    "api_keys",
    _md,
    sa.Column("id", BigIntPK, sa.Identity(always=False), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("key_hash", sa.Text, nullable=False, unique=True),
    sa.Column("key_prefix", sa.Text, nullable=False),
    sa.Column("role", sa.Text, sa.ForeignKey("roles.name"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("revoked_at", UTCDateTime),
)

_ALL = [
    "leads.view_all", "leads.view_branch", "leads.view_team", "leads.view_assigned", "leads.view_handed",
    "walkins.view_branch", "leads.create", "leads.update", "leads.assign", "walkins.create",
    "customers.search_phone", "bookings.approve", "users.view", "users.manage", "roles.manage",
    "apikeys.manage", "config.manage", "system.view",
]  # fmt: skip
_BUILT_IN: dict[str, tuple[str, list[str]]] = {
    "Admin": ("Everything, including every lead", _ALL),
    "CRE": ("Call-centre executive: works the leads assigned to them",
            ["leads.view_assigned", "leads.create", "leads.update"]),
    "CRE_TL": ("CRE team lead: every lead of their branches (all leads without a branch), assigns",
               ["leads.view_branch", "leads.create", "leads.update", "leads.assign", "users.view",
                "config.manage"]),
    "Receptionist": ("Takes walk-ins at her branch and finds customers by phone",
                     ["walkins.view_branch", "walkins.create", "customers.search_phone"]),
    "RM": ("Relationship manager: the leads handed to them", ["leads.view_handed", "leads.update"]),
    "RM_TL": ("Branch team lead: the leads of the RMs in the branches they lead",
              ["leads.view_team", "leads.update", "leads.assign", "users.view"]),
    "GM": ("General manager: every lead of their branches (all leads without a branch), approves bookings",
           ["leads.view_branch", "bookings.approve", "users.view"]),
    "Developer": ("User administration and system logs; no leads", ["users.view", "users.manage", "system.view"]),
}  # fmt: skip


def upgrade() -> None:
    ddl.set_lock_timeout()
    for table in (roles, role_permissions, refresh_tokens, login_failures, api_keys):
        ddl.create_table(table)
    # Literal SQL (the values are the constants above) so `leadhub db sql` prints it too.
    for name, (description, permissions) in _BUILT_IN.items():
        op.execute(
            f"INSERT INTO roles (name, built_in, description) VALUES ({_lit(name)}, true, {_lit(description)}) "
            "ON CONFLICT (name) DO NOTHING"
        )
        values = ", ".join(f"({_lit(name)}, {_lit(p)})" for p in permissions)
        op.execute(
            f"INSERT INTO role_permissions (role, permission) VALUES {values} ON CONFLICT (role, permission) DO NOTHING"
        )


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
