"""Password hashing: argon2id for every new hash; the legacy app's bcrypt hashes still verify.

The legacy `users.password_hash` holds bcrypt (`$2a$`/`$2b$`, cost 10, ../shared/legacy/schema.sql).
A successful login with such a hash (or an argon2 hash with outdated parameters) asks the caller to
store a fresh argon2 hash, so adopted users keep their passwords and the old hashes fade out.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cache

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from leadhub.errors import ValidationFailed

MIN_LENGTH = 10
MAX_LENGTH = 256  # argon2 takes any length; the cap keeps a request from burning CPU on megabytes
_hasher = PasswordHasher()  # argon2id, the library's current recommended parameters
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


@dataclass(frozen=True)
class Verification:
    ok: bool
    needs_rehash: bool = False


def check_policy(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(f"the password is too short: at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(f"the password is too long: at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_policy(password)
    return _hasher.hash(password)


def verify_password(password: str, stored: str | None) -> Verification:
    """Never raises for a bad or unknown stored hash: that is a failed login, not a crash."""
    if len(password) > MAX_LENGTH:
        return Verification(ok=False)
    if not stored:
        _burn(password)
        return Verification(ok=False)
    if stored.startswith(_BCRYPT_PREFIXES):
        try:
            # bcrypt reads at most 72 bytes; the legacy app (bcryptjs) did the same, so keep it.
            ok = bcrypt.checkpw(password.encode()[:72], stored.encode())
        except ValueError:
            return Verification(ok=False)
        return Verification(ok=ok, needs_rehash=ok)
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Verification(ok=False)
    return Verification(ok=True, needs_rehash=_hasher.check_needs_rehash(stored))


@cache
def _dummy_hash() -> str:
    # Verified against when the user does not exist, so an unknown username costs the same time. Made on
    # first use, not at import: hashing takes about 0.1 s, which every CLI command paid.
    return _hasher.hash("leadhub-dummy-password")


def _burn(password: str) -> None:
    with contextlib.suppress(VerificationError):
        _hasher.verify(_dummy_hash(), password)


def dummy_verify(password: str) -> None:
    """Spend the time a real verification would, for a username that does not exist."""
    _burn(password)


def rehash(password: str) -> str:
    """A fresh argon2 hash of a password that just verified, without the policy for new passwords."""
    return _hasher.hash(password)
