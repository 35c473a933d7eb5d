"""Logins: password check with a database-held rate limit, access tokens, rotating refresh tokens.

`login` and `refresh` return the error instead of raising it when something must be written with
the refusal (a failed attempt, a revoked token family): the request still commits, then answers.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from leadhub.auth import passwords, tokens
from leadhub.auth.access import Actor, actor_for_login
from leadhub.config import Settings
from leadhub.db.dialect import dialect_name
from leadhub.db.models import LoginFailure, RefreshToken, User
from leadhub.errors import (
    AuthenticationError,
    LeadhubError,
    NotConfiguredError,
    RateLimitedError,
    ValidationFailed,
)

WRONG_CREDENTIALS = "wrong username or password"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives
    refresh_expires_at: datetime
    user_id: int


def _secret(settings: Settings) -> str:
    if settings.secret_key is None:
        raise NotConfiguredError("logins are disabled: set LEADHUB_SECRET_KEY (see `leadhub config init`)")
    return settings.secret_key.get_secret_value()


def _retry_after(session: Session, *, scope: str, key: str, settings: Settings, now: datetime) -> int | None:
    """Seconds until this username or address may try again, or None when it may now."""
    window = timedelta(minutes=settings.login_window_minutes)
    times = list(
        session.execute(
            select(LoginFailure.failed_at)
            .where(
                LoginFailure.scope == scope, LoginFailure.key == key, LoginFailure.failed_at > now - window
            )
            .order_by(LoginFailure.failed_at)
        ).scalars()
    )
    if len(times) < settings.login_max_failures:
        return None
    # Sliding window: allowed again once enough of the oldest failures have aged out.
    frees_at = times[len(times) - settings.login_max_failures] + window
    return max(1, math.ceil((frees_at - now).total_seconds()))


def _serialise_attempts(session: Session, username_key: str) -> None:
    """One login attempt per username at a time, across processes, so N concurrent wrong guesses
    cannot all pass the count before any is recorded. SQLite transactions already start with
    BEGIN IMMEDIATE, which serialises them."""
    if dialect_name(session) == "postgresql":
        digest = hashlib.sha256(f"leadhub.login.{username_key}".encode()).digest()[:8]
        session.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": int.from_bytes(digest, "big", signed=True)}
        )


def _record_failure(session: Session, *, username_key: str, client_ip: str | None, now: datetime) -> None:
    session.add(LoginFailure(scope="username", key=username_key, failed_at=now))
    if client_ip:
        session.add(LoginFailure(scope="ip", key=client_ip, failed_at=now))
    session.flush()


def _issue(session: Session, *, user_id: int, family_id: str, settings: Settings, now: datetime) -> TokenPair:
    refresh = tokens.random_token()
    expires = now + timedelta(days=settings.refresh_token_days)
    session.add(
        RefreshToken(
            token_hash=tokens.sha256_hex(refresh),
            family_id=family_id,
            user_id=user_id,
            issued_at=now,
            expires_at=expires,
        )
    )
    session.flush()
    ttl = timedelta(minutes=settings.access_token_minutes)
    access = tokens.issue_access_token(
        _secret(settings), user_id=user_id, family_id=family_id, now=now, ttl=ttl
    )
    return TokenPair(access, refresh, int(ttl.total_seconds()), expires, user_id)


def login(
    session: Session,
    *,
    username: str,
    password: str,
    client_ip: str | None,
    settings: Settings,
    now: datetime | None = None,
) -> TokenPair | LeadhubError:
    now = now or datetime.now(UTC)
    _secret(settings)
    key = username.strip().lower()
    _serialise_attempts(session, key)
    for scope, value in (("username", key), ("ip", client_ip)):
        if value is None:
            continue
        wait = _retry_after(session, scope=scope, key=value, settings=settings, now=now)
        if wait is not None:
            what = "this username" if scope == "username" else "this address"
            return RateLimitedError(
                f"too many failed logins for {what}; try again in {wait} s", retry_after=wait
            )
    user = session.execute(select(User).where(User.username == username.strip())).scalar_one_or_none()
    if user is None:
        passwords.dummy_verify(password)
        _record_failure(session, username_key=key, client_ip=client_ip, now=now)
        return AuthenticationError(WRONG_CREDENTIALS)
    check = passwords.verify_password(password, user.password_hash)
    if not check.ok:
        _record_failure(session, username_key=key, client_ip=client_ip, now=now)
        return AuthenticationError(WRONG_CREDENTIALS)
    if not user.status:  # said only to someone who knows the password
        return AuthenticationError("this user is disabled; ask an administrator")
    if check.needs_rehash:
        # A legacy bcrypt hash (or old argon2 parameters): replace it now that we hold the password.
        # No length policy here: the user chose this password under the old rules.
        user.password_hash = passwords.rehash(password)
    session.execute(delete(LoginFailure).where(LoginFailure.scope == "username", LoginFailure.key == key))
    return _issue(session, user_id=user.user_id, family_id=uuid.uuid4().hex, settings=settings, now=now)


def _revoke_family(session: Session, family_id: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def refresh(
    session: Session, *, refresh_token: str, settings: Settings, now: datetime | None = None
) -> TokenPair | LeadhubError:
    """Spend a refresh token for a new pair. Presenting a spent token again ends the whole login."""
    now = now or datetime.now(UTC)
    _secret(settings)
    digest = tokens.sha256_hex(refresh_token)
    # Compare-and-set: of two concurrent refreshes with one token exactly one spends it.
    spent = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == digest,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.family_id, RefreshToken.user_id)
    ).first()
    if spent is None:
        row = session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == digest)
        ).scalar_one_or_none()
        if row is None:
            return AuthenticationError("unknown refresh token; log in again")
        if row.revoked_at is not None:
            return AuthenticationError("this refresh token was revoked; log in again")
        if row.used_at is not None:
            _revoke_family(session, row.family_id, now)
            return AuthenticationError(
                "this refresh token was already used: every session of this login is now ended; log in again"
            )
        return AuthenticationError("the refresh token has expired; log in again")
    user = session.get(User, spent.user_id)
    if user is None or not user.status:
        _revoke_family(session, spent.family_id, now)
        return AuthenticationError("this user is disabled; ask an administrator")
    return _issue(session, user_id=user.user_id, family_id=spent.family_id, settings=settings, now=now)


def logout(session: Session, *, actor: Actor, now: datetime | None = None) -> None:
    if actor.family_id is None:
        raise AuthenticationError("log out with the access token of a login (API keys are revoked instead)")
    _revoke_family(session, actor.family_id, now or datetime.now(UTC))


def actor_from_access_token(
    session: Session, token: str, *, settings: Settings, now: datetime | None = None
) -> Actor:
    now = now or datetime.now(UTC)
    claims = tokens.read_access_token(_secret(settings), token, now=now)
    actor, live = actor_for_login(session, user_id=claims.user_id, family_id=claims.family_id)
    if not live:
        raise AuthenticationError("this login was ended (logged out or revoked); log in again")
    if actor is None:
        raise AuthenticationError("this user is disabled; ask an administrator")
    return actor


@dataclass(frozen=True)
class Purged:
    login_failures: int
    refresh_tokens: int


def purge(
    factory: Callable[[], Session], *, keep_days: int, now: datetime | None = None, batch: int = 5000
) -> Purged:
    """Delete failed-login records and refresh tokens (expired, or revoked) older than `keep_days`, in
    short batches, each its own transaction. Nothing deleted still counts: a failure counts for the
    rate-limit window (minutes) only, and an expired or revoked token is refused whether or not its row
    exists (presenting it answers 401 either way)."""
    if keep_days < 1:
        raise ValidationFailed("keep at least one day of login history (--keep-days 1 or more)")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    old_failures = select(LoginFailure.id).where(LoginFailure.failed_at < cutoff)
    old_tokens = select(RefreshToken.id).where(
        (RefreshToken.expires_at < cutoff) | (RefreshToken.revoked_at < cutoff)
    )
    counts = []
    for model, query in ((LoginFailure, old_failures), (RefreshToken, old_tokens)):
        total = 0
        while True:
            with factory() as session, session.begin():
                ids = list(session.execute(query.limit(batch)).scalars())
                if ids:
                    session.execute(delete(model).where(model.id.in_(ids)))
            total += len(ids)
            if len(ids) < batch:
                break
        counts.append(total)
    return Purged(login_failures=counts[0], refresh_tokens=counts[1])
