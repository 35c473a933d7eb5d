"""Password hashing and access tokens: pure code, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import pytest
from sqlalchemy import select

from leadhub.auth import passwords, tokens
from leadhub.auth.permissions import ADMIN, ALL_PERMISSIONS, BUILT_IN_ROLES
from leadhub.db import migrate
from leadhub.db.models import Role, RolePermission
from leadhub.db.session import make_engine, make_session_factory
from leadhub.errors import AuthenticationError, ValidationFailed
from tests.conftest import fresh_database

SECRET = "s" * 40
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def test_new_hashes_are_argon2_and_verify() -> None:
    stored = passwords.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert passwords.verify_password("correct horse battery", stored) == passwords.Verification(ok=True)
    assert not passwords.verify_password("wrong horse battery", stored).ok


@pytest.mark.parametrize("prefix", [b"2a", b"2b"])
def test_legacy_bcrypt_verifies_and_asks_for_an_upgrade(prefix: bytes) -> None:
    # The legacy app wrote bcrypt cost 10 with bcryptjs, which emits $2a$ (schema.sql: users.password_hash).
    stored = bcrypt.hashpw(b"legacy-pass", bcrypt.gensalt(rounds=10, prefix=prefix)).decode()
    assert stored.startswith(f"${prefix.decode()}$")
    assert passwords.verify_password("legacy-pass", stored) == passwords.Verification(
        ok=True, needs_rehash=True
    )
    assert passwords.verify_password("other-pass", stored) == passwords.Verification(ok=False)


@pytest.mark.parametrize("stored", [None, "", "plaintext", "$2b$10$broken", "$argon2id$v=19$garbage"])
def test_unusable_stored_hashes_fail_without_raising(stored: str | None) -> None:
    assert passwords.verify_password("whatever-password", stored) == passwords.Verification(ok=False)


@pytest.mark.parametrize(("password", "message"), [("short", "too short"), ("x" * 300, "too long")])
def test_password_policy(password: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        passwords.hash_password(password)


def test_access_token_round_trip_and_expiry() -> None:
    token = tokens.issue_access_token(SECRET, user_id=7, family_id="f1", now=NOW, ttl=timedelta(minutes=15))
    claims = tokens.read_access_token(SECRET, token, now=NOW + timedelta(minutes=14))
    assert (claims.user_id, claims.family_id) == (7, "f1")
    with pytest.raises(AuthenticationError, match="expired"):
        tokens.read_access_token(SECRET, token, now=NOW + timedelta(minutes=15))


def _tamper_payload(token: str) -> str:
    header, _, signature = token.split(".")
    forged = tokens.issue_access_token("another-secret-xxxxxxxx", user_id=1, family_id="f1", now=NOW,
                                       ttl=timedelta(minutes=15)).split(".")[1]  # fmt: skip
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: _tamper_payload(t),
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "x.y.z",
        lambda t: t.replace(".", "", 1),
    ],
)
def test_forged_or_mangled_tokens_are_refused(mangle: object) -> None:
    token = tokens.issue_access_token(SECRET, user_id=7, family_id="f1", now=NOW, ttl=timedelta(minutes=15))
    assert callable(mangle)
    with pytest.raises(AuthenticationError):
        tokens.read_access_token(SECRET, mangle(token), now=NOW)
    with pytest.raises(AuthenticationError):
        tokens.read_access_token("a-different-secret-of-length", token, now=NOW)


def test_migration_seeds_exactly_the_built_in_roles(tmp_path: Path) -> None:
    """Revision 0007 freezes its own copy of the built-in roles; it must match the code's."""
    with fresh_database(tmp_path) as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        with make_session_factory(engine)() as s:
            seeded = {r.name: r.built_in for r in s.execute(select(Role)).scalars()}
            grants: dict[str, set[str]] = {}
            for row in s.execute(select(RolePermission)).scalars():
                grants.setdefault(row.role, set()).add(row.permission)
        engine.dispose()
    assert seeded == dict.fromkeys(BUILT_IN_ROLES, True)
    assert grants == {name: {str(p) for p in perms} for name, (_, perms) in BUILT_IN_ROLES.items()}
    assert grants[ADMIN] == ALL_PERMISSIONS
