"""Per-integration API keys: random, shown once, stored as SHA-256, each acting as a named role."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leadhub.auth import tokens
from leadhub.auth.access import Actor, admin_key_actor, role_permissions
from leadhub.auth.roles import get_role
from leadhub.config import Settings
from leadhub.db.dialect import upsert
from leadhub.db.models import ApiKey
from leadhub.errors import AuthenticationError, ConflictError, NotFoundError, ValidationFailed

PREFIX = "lh_"


@dataclass(frozen=True)
class NewApiKey:
    name: str
    role: str
    key: str  # shown once, never stored


def create_api_key(session: Session, *, name: str, role: str) -> NewApiKey:
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed("an API key name is 1-100 characters")
    get_role(session, role)
    key = PREFIX + tokens.random_token()
    created = session.execute(
        upsert(session, ApiKey)
        .values(name=name, role=role, key_hash=tokens.sha256_hex(key), key_prefix=key[:10])
        .on_conflict_do_nothing()
        .returning(ApiKey.id)
    ).first()
    if created is None:
        raise ConflictError(f"an API key named {name!r} already exists (revoked keys keep their name)")
    return NewApiKey(name=name, role=role, key=key)


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.execute(select(ApiKey).order_by(ApiKey.name)).scalars())


def revoke_api_key(session: Session, *, name: str) -> None:
    done = session.execute(
        update(ApiKey)
        .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if done.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFoundError(f"no active API key named {name!r}")


def actor_from_api_key(session: Session, key: str, *, settings: Settings) -> Actor | None:
    """The admin key (LEADHUB_ADMIN_API_KEY) acts as Admin; a per-integration key as its role."""
    if settings.admin_api_key is not None and hmac.compare_digest(
        key.encode(), settings.admin_api_key.get_secret_value().encode()
    ):
        return admin_key_actor()
    if not key.startswith(PREFIX):
        return None
    row = session.execute(
        select(ApiKey).where(ApiKey.key_hash == tokens.sha256_hex(key))
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.revoked_at is not None:
        raise AuthenticationError(f"the API key {row.name!r} was revoked")
    return Actor(role=row.role, permissions=role_permissions(session, row.role), via="api_key",
                 api_key_name=row.name, username=f"apikey:{row.name}")  # fmt: skip
