"""leadhub's auth tables: roles as data, refresh tokens, failed logins, integration API keys.

Users, branches and branch memberships are the adopted legacy tables (`legacy.py`); nothing here
changes them. Secrets are stored only as SHA-256 digests (tokens and keys are random, 256 bits).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Identity, Index, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from leadhub.db.base import Base
from leadhub.db.types import BigIntPK, UTCDateTime


class Role(Base):
    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(Text, primary_key=True)  # the value of users.role
    built_in: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class RolePermission(Base):
    __tablename__ = "role_permissions"

    role: Mapped[str] = mapped_column(Text, ForeignKey("roles.name"), primary_key=True)
    permission: Mapped[str] = mapped_column(Text, primary_key=True)


class RefreshToken(Base):
    """One row per refresh token issued; a login starts a family, each refresh adds one to it."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    token_hash: Mapped[str] = mapped_column(Text, unique=True)  # sha256 hex of the token
    family_id: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.user_id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # rotated: presenting it again is reuse
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginFailure(Base):
    """A failed login, counted per username and per client address over a sliding window."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_scope_key_failed_at", "scope", "key", "failed_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    scope: Mapped[str] = mapped_column(Text)  # username | ip
    key: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A key for one integration, acting as a named role."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)  # sha256 hex of the whole key
    key_prefix: Mapped[str] = mapped_column(Text)  # shown in lists, so an operator can tell keys apart
    role: Mapped[str] = mapped_column(Text, ForeignKey("roles.name"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
