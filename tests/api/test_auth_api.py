"""/api/auth, /api/users, /api/roles and user tokens on /api/leads, over HTTP against the real database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import bcrypt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from leadhub.api.app import create_app
from leadhub.auth import apikeys, sessions, users
from leadhub.config import Settings
from leadhub.db.models import ApiKey, Branch, Lead, LoginFailure, RefreshToken, User
from leadhub.db.session import make_engine, session_scope
from leadhub.errors import LeadhubError

ADMIN_KEY = "a" * 32
SECRET = "s" * 48
PASSWORD = "correct horse battery"


def _settings(engine: Engine) -> Settings:
    return Settings(
        database_url=str(engine.url), admin_api_key=SecretStr(ADMIN_KEY), secret_key=SecretStr(SECRET)
    )


def _client(engine: Engine, ip: str = "10.0.0.1") -> TestClient:
    return TestClient(
        create_app(_settings(engine), engine), raise_server_exceptions=False, client=(ip, 50000)
    )


@pytest.fixture
def client(engine: Engine, factory: sessionmaker[Session]) -> Iterator[TestClient]:
    with _client(engine) as c:
        yield c


def _make_user(factory: sessionmaker[Session], username: str, role: str, branch: int | None = None) -> int:
    with session_scope(factory) as s:
        grants = [users.BranchGrant(branch_id=branch)] if branch else []
        return users.create_user(s, username=username, role=role, password=PASSWORD, branches=grants).user_id


def _branch(factory: sessionmaker[Session], name: str = "Pune Baner") -> int:
    with session_scope(factory) as s:
        b = Branch(name=name)
        s.add(b)
        s.flush()
        return b.id


def _login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_login_right_and_wrong(client: TestClient, factory: sessionmaker[Session]) -> None:
    _make_user(factory, "asha", "CRE")
    tokens = _login(client, "asha")
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 15 * 60
    me = client.get("/api/auth/me", headers=_bearer(tokens["access_token"])).json()
    assert me["username"] == "asha" and me["role"] == "CRE" and "leads.view_assigned" in me["permissions"]
    for username, password in [("asha", "wrong password!"), ("nobody", PASSWORD)]:
        response = client.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "wrong username or password"  # same for both
    with factory() as s:
        assert s.execute(select(RefreshToken.token_hash)).scalar_one() != tokens["refresh_token"]  # hashed


def test_legacy_bcrypt_password_logs_in_and_is_upgraded(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    legacy = bcrypt.hashpw(b"old-short", bcrypt.gensalt(rounds=10, prefix=b"2a")).decode()
    with session_scope(factory) as s:
        s.add(User(username="ravi", role="RM", password_hash=legacy, status=True))
    _login(client, "ravi", "old-short")  # shorter than today's policy: still accepted, it is his password
    with factory() as s:
        stored = s.execute(select(User.password_hash).where(User.username == "ravi")).scalar_one()
    assert stored is not None and stored.startswith("$argon2id$")
    _login(client, "ravi", "old-short")  # and the new hash verifies


def test_refresh_rotates_and_reuse_revokes_the_family(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    _make_user(factory, "asha", "CRE")
    first = _login(client, "asha")
    second = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]}).json()
    assert client.get("/api/auth/me", headers=_bearer(third["access_token"])).status_code == 200
    # Someone replays the first (stolen) token: refused, and the whole login ends.
    reuse = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401 and "already used" in reuse.json()["error"]["message"]
    assert client.post("/api/auth/refresh", json={"refresh_token": third["refresh_token"]}).status_code == 401
    assert client.get("/api/auth/me", headers=_bearer(third["access_token"])).status_code == 401
    # Another login of the same user is untouched.
    other = _login(client, "asha")
    assert client.get("/api/auth/me", headers=_bearer(other["access_token"])).status_code == 200


def test_concurrent_refreshes_of_one_token_spend_it_once(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    _make_user(factory, "asha", "CRE")
    settings = _settings(engine)
    with session_scope(factory) as s:
        pair = sessions.login(s, username="asha", password=PASSWORD, client_ip=None, settings=settings)
    assert isinstance(pair, sessions.TokenPair)
    results: list[sessions.TokenPair | LeadhubError] = []
    barrier = threading.Barrier(4)

    def spend() -> None:
        barrier.wait()
        with session_scope(factory) as s:
            results.append(sessions.refresh(s, refresh_token=pair.refresh_token, settings=settings))

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, sessions.TokenPair) for r in results) <= 1
    assert len(results) == 4
    # Every loser was a reuse, so the family is revoked: no token of it refreshes any more.
    with factory() as s:
        assert s.execute(select(func.count()).where(RefreshToken.revoked_at.is_(None))).scalar_one() == 0


def test_logout_revokes_access_and_refresh(client: TestClient, factory: sessionmaker[Session]) -> None:
    _make_user(factory, "asha", "CRE")
    tokens = _login(client, "asha")
    assert client.post("/api/auth/logout", headers=_bearer(tokens["access_token"])).status_code == 204
    me = client.get("/api/auth/me", headers=_bearer(tokens["access_token"]))
    assert me.status_code == 401 and "ended" in me.json()["error"]["message"]
    assert (
        client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    )


def test_disabled_user_cannot_log_in_or_refresh(client: TestClient, factory: sessionmaker[Session]) -> None:
    _make_user(factory, "asha", "CRE")
    tokens = _login(client, "asha")
    with session_scope(factory) as s:
        users.disable_user(s, username="asha")
    login = client.post("/api/auth/login", json={"username": "asha", "password": PASSWORD})
    assert login.status_code == 401 and "disabled" in login.json()["error"]["message"]
    assert (
        client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    )
    assert client.get("/api/auth/me", headers=_bearer(tokens["access_token"])).status_code == 401


def test_user_disabled_by_the_legacy_app_loses_access_at_once(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    """The old app disables a user by users.status = false only; live tokens still stop working."""
    _make_user(factory, "asha", "CRE")
    tokens = _login(client, "asha")
    with session_scope(factory) as s:
        s.execute(update(User).where(User.username == "asha").values(status=False))
    assert client.get("/api/auth/me", headers=_bearer(tokens["access_token"])).status_code == 401
    assert (
        client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    )


def test_failed_logins_are_limited_per_username_across_app_instances(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    """Two app instances with their own engines (as two `leadhub serve` processes) share one count."""
    _make_user(factory, "asha", "CRE")
    other_engine = make_engine(str(engine.url.render_as_string(hide_password=False)))
    try:
        with _client(engine, "10.0.0.1") as one, _client(other_engine, "10.0.0.2") as two:
            for i in range(5):
                app = one if i % 2 else two
                response = app.post("/api/auth/login", json={"username": "asha", "password": f"guess {i}"})
                assert response.status_code == 401
            for app in (one, two):  # now even the right password waits, on either instance
                blocked = app.post("/api/auth/login", json={"username": "asha", "password": PASSWORD})
                assert blocked.status_code == 429
                assert 1 <= int(blocked.headers["Retry-After"]) <= 15 * 60
                assert blocked.json()["error"]["retry_after"] == int(blocked.headers["Retry-After"])
            with _client(engine, "10.0.0.3") as three:  # another user is not affected
                _make_user(factory, "ravi", "RM")
                _login(three, "ravi")
    finally:
        other_engine.dispose()


def test_failed_logins_are_limited_per_address(engine: Engine, factory: sessionmaker[Session]) -> None:
    _make_user(factory, "asha", "CRE")
    with _client(engine, "10.9.9.9") as attacker, _client(engine, "10.0.0.1") as office:
        for i in range(5):  # spraying different usernames from one address
            assert (
                attacker.post("/api/auth/login", json={"username": f"u{i}", "password": "x"}).status_code
                == 401
            )
        assert (
            attacker.post("/api/auth/login", json={"username": "asha", "password": PASSWORD}).status_code
            == 429
        )
        _login(office, "asha")  # from another address asha logs in
    with factory() as s:  # a success clears the username's failures, not the address's
        assert s.execute(select(func.count()).where(LoginFailure.key == "10.9.9.9")).scalar_one() == 5


def test_logins_need_the_secret_key(engine: Engine, factory: sessionmaker[Session]) -> None:
    _make_user(factory, "asha", "CRE")
    settings = Settings(database_url=str(engine.url))
    with TestClient(create_app(settings, engine)) as c:
        response = c.post("/api/auth/login", json={"username": "asha", "password": PASSWORD})
    assert response.status_code == 503 and "LEADHUB_SECRET_KEY" in response.json()["error"]["message"]


def test_integration_api_keys(client: TestClient, factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        tl_key = apikeys.create_api_key(s, name="dms", role="CRE_TL").key
        cre_key = apikeys.create_api_key(s, name="dialer", role="CRE").key
    me = client.get("/api/auth/me", headers={"X-API-Key": tl_key}).json()
    assert me["role"] == "CRE_TL" and me["via"] == "api_key" and me["user_id"] is None
    assert client.get("/api/users", headers=_bearer(tl_key)).status_code == 200  # Bearer works too
    assert client.get("/api/users", headers={"X-API-Key": cre_key}).status_code == 403
    with session_scope(factory) as s:
        apikeys.revoke_api_key(s, name="dms")
    revoked = client.get("/api/auth/me", headers={"X-API-Key": tl_key})
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
    assert client.get("/api/auth/me", headers={"X-API-Key": "lh_not-a-key"}).status_code == 401
    admin = client.get("/api/auth/me", headers={"X-API-Key": ADMIN_KEY}).json()
    assert admin["role"] == "Admin" and admin["via"] == "admin_key"
    with factory() as s:
        stored = s.execute(select(ApiKey.key_hash)).scalars().all()
    assert tl_key not in stored and cre_key not in stored


@pytest.mark.parametrize(("role", "users_status"), [("Admin", 200), ("CRE_TL", 200), ("Developer", 200),
                                                    ("CRE", 403), ("Receptionist", 403), ("RM", 403)])  # fmt: skip
def test_users_and_roles_lists_need_users_view(
    client: TestClient, factory: sessionmaker[Session], role: str, users_status: int
) -> None:
    branch = _branch(factory)
    _make_user(factory, "someone", role, branch if role in ("CRE", "Receptionist", "RM", "CRE_TL") else None)
    headers = _bearer(_login(client, "someone")["access_token"])
    listed = client.get("/api/users", headers=headers)
    assert listed.status_code == users_status
    assert client.get("/api/roles", headers=headers).status_code == users_status
    if users_status == 200:
        assert "password_hash" not in listed.text and "argon2" not in listed.text
        assert {r["name"] for r in client.get("/api/roles", headers=headers).json()} >= {"Admin", "CRE", "GM"}
    else:
        assert "users.view" in listed.json()["error"]["message"]


def test_leads_with_user_tokens(client: TestClient, factory: sessionmaker[Session]) -> None:
    own, other = _branch(factory, "Pune"), _branch(factory, "Mumbai")
    _make_user(factory, "cre", "CRE", own)
    _make_user(factory, "recep", "Receptionist", own)
    _make_user(factory, "rm", "RM", own)
    cre, recep, rm = (_bearer(_login(client, u)["access_token"]) for u in ("cre", "recep", "rm"))
    walk_in = {"source": "walk_in", "phone": "9876543210", "name": "Asha", "branch_id": own}
    created = client.post("/api/leads", json=walk_in, headers=recep)
    assert created.status_code == 201, created.text
    lead_id = created.json()["lead"]["id"]
    elsewhere = client.post("/api/leads", json={**walk_in, "branch_id": other}, headers=recep)
    assert elsewhere.status_code == 403
    assert client.post("/api/leads", json={**walk_in, "phone": "9876500000"}, headers=rm).status_code == 403
    assert client.post("/api/leads", json={**walk_in, "phone": "9876511111"}, headers=cre).status_code == 201
    # The receptionist sees her branch's walk-in; the CRE (not assigned) and the RM (not handed) get 404.
    assert client.get(f"/api/leads/{lead_id}", headers=recep).json()["id"] == lead_id
    for headers in (cre, rm):
        missing = client.get(f"/api/leads/{lead_id}", headers=headers)
        assert (
            missing.status_code == 404 and missing.json()["error"]["message"] == f"lead {lead_id} not found"
        )
    assert client.get("/api/leads/999999", headers=recep).status_code == 404
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Lead)).scalar_one() == 2


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer a.b.c"}, {"Authorization": "Bearer nope"}])
def test_me_needs_credentials(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/api/auth/me", headers=headers)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"


def test_concurrent_wrong_guesses_are_counted_exactly(engine: Engine, factory: sessionmaker[Session]) -> None:
    """Ten simultaneous wrong guesses (real threads, own transactions): five are checked, five refused."""
    _make_user(factory, "asha", "CRE")
    settings = _settings(engine)
    outcomes: list[str] = []
    barrier = threading.Barrier(10)

    def guess(i: int) -> None:
        barrier.wait()
        with session_scope(factory) as s:
            result = sessions.login(s, username="asha", password=f"guess {i}", client_ip=f"10.1.0.{i}",
                                    settings=settings)  # fmt: skip
        outcomes.append(type(result).__name__)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["AuthenticationError"] * 5 + ["RateLimitedError"] * 5
