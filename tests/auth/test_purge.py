"""`leadhub users purge-logins`: old failed logins and dead refresh tokens go, in batches; nothing
that still counts goes with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from leadhub.auth import sessions, users
from leadhub.auth.sessions import TokenPair
from leadhub.config import Settings
from leadhub.db.models import LoginFailure, RefreshToken
from leadhub.db.session import session_scope
from leadhub.errors import ValidationFailed

PASSWORD = "correct horse battery"


def test_purge_keeps_live_logins_and_recent_history(factory: sessionmaker[Session]) -> None:
    settings = Settings(database_url="sqlite://", secret_key=SecretStr("s" * 48))
    now = datetime.now(UTC)
    with session_scope(factory) as s:
        users.create_user(s, username="asha", role="CRE", password=PASSWORD)
        logins = [sessions.login(s, username="asha", password=PASSWORD, client_ip=None, settings=settings)
                  for _ in range(5)]  # fmt: skip
        assert all(isinstance(p, TokenPair) for p in logins)
        families = list(s.execute(select(RefreshToken.family_id).order_by(RefreshToken.id)).scalars())
        # 0: live; 1: expired 40 days ago; 2: revoked 40 days ago; 3: expired 10 days ago; 4: live
        s.execute(update(RefreshToken).where(RefreshToken.family_id == families[1])
                  .values(expires_at=now - timedelta(days=40)))  # fmt: skip
        s.execute(update(RefreshToken).where(RefreshToken.family_id == families[2])
                  .values(revoked_at=now - timedelta(days=40)))  # fmt: skip
        s.execute(update(RefreshToken).where(RefreshToken.family_id == families[3])
                  .values(expires_at=now - timedelta(days=10)))  # fmt: skip
        for days in (0, 1, 29, 31, 45, 60, 90):
            s.add(LoginFailure(scope="username", key="asha", failed_at=now - timedelta(days=days)))
    with pytest.raises(ValidationFailed):
        sessions.purge(factory, keep_days=0)
    done = sessions.purge(factory, keep_days=30, batch=2)  # several batches
    assert (done.login_failures, done.refresh_tokens) == (4, 2)
    with session_scope(factory) as s:
        left = set(s.execute(select(RefreshToken.family_id)).scalars())
        ages = sorted((now - t).days for t in s.execute(select(LoginFailure.failed_at)).scalars())
        assert left == {families[0], families[3], families[4]}
        assert ages == [0, 1, 29]
        first = logins[0]
        assert isinstance(first, TokenPair)
        actor = sessions.actor_from_access_token(s, first.access_token, settings=settings)
        assert actor.username == "asha"
    again = sessions.purge(factory, keep_days=30)
    assert (again.login_failures, again.refresh_tokens) == (0, 0)
