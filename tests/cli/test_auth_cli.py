"""`leadhub users|roles|apikeys` as an operator runs them, as subprocesses against a database of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select

from leadhub.auth import sessions
from leadhub.config import Settings
from leadhub.db.models import Branch, User
from leadhub.db.session import make_engine, make_session_factory, session_scope
from tests.conftest import fresh_database


def _leadhub(url: str, *args: str, input: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEADHUB_DATABASE_URL": url}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["leadhub", *args], env=env, input=input, capture_output=True, text=True, check=check
    )


def _login(url: str, username: str, password: str) -> object:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            settings = Settings(database_url=url, secret_key=SecretStr("s" * 40))
            return sessions.login(s, username=username, password=password, client_ip=None, settings=settings)
    finally:
        engine.dispose()


def test_users_roles_and_keys_from_the_cli(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        _leadhub(url, "db", "upgrade")
        engine = make_engine(url)
        with session_scope(make_session_factory(engine)) as s:
            branch = Branch(name="Pune Baner")
            s.add(branch)
            s.flush()
            branch_id = branch.id
        engine.dispose()

        created = _leadhub(url, "users", "create", "asha", "--role", "RM", "--branch", str(branch_id),
                           "--name", "Asha Patel", "--password-stdin", input="first password 1\n")  # fmt: skip
        assert "created user asha" in created.stdout
        assert "first password 1" not in created.stdout + created.stderr
        listed = json.loads(_leadhub(url, "users", "list", "--json").stdout)
        assert listed[0]["username"] == "asha" and listed[0]["branches"][0]["role"] == "RM"
        assert isinstance(_login(url, "asha", "first password 1"), sessions.TokenPair)

        _leadhub(url, "users", "set-password", "asha", "--password-stdin", input="second password 2\n")
        assert not isinstance(_login(url, "asha", "first password 1"), sessions.TokenPair)
        assert isinstance(_login(url, "asha", "second password 2"), sessions.TokenPair)

        _leadhub(url, "users", "disable", "asha")
        engine = make_engine(url)
        with make_session_factory(engine)() as s:
            assert s.execute(select(User.status).where(User.username == "asha")).scalar_one() is False
        engine.dispose()
        assert not isinstance(_login(url, "asha", "second password 2"), sessions.TokenPair)

        # Bad input: one red line, exit 1, nothing written.
        for args, stdin, message in [
            (("users", "create", "ravi", "--role", "Nope", "--password-stdin"), "a long password\n", "no role named"),
            (("users", "create", "ravi", "--role", "CRE", "--password-stdin"), "short\n", "too short"),
            (("users", "create", "asha", "--role", "CRE", "--password-stdin"), "a long password\n", "already exists"),
            (("users", "create", "ravi", "--role", "GM", "--branch", str(branch_id), "--password-stdin"),
             "a long password\n", "ID:ROLE"),
            (("roles", "create", "Finance", "-p", "leads.fly"), "", "unknown permission"),
        ]:  # fmt: skip
            failed = _leadhub(url, *args, input=stdin, check=False)
            assert failed.returncode == 1 and message in failed.stderr and "Traceback" not in failed.stderr

        _leadhub(url, "roles", "create", "Finance", "-p", "leads.view_all", "--description", "Accounts")
        _leadhub(url, "roles", "grant", "Finance", "users.view")
        _leadhub(url, "roles", "revoke", "Finance", "leads.view_all")
        finance = next(
            r for r in json.loads(_leadhub(url, "roles", "list", "--json").stdout) if r["name"] == "Finance"
        )
        assert finance["permissions"] == ["users.view"] and finance["built_in"] is False

        key = _leadhub(url, "apikeys", "create", "dms", "--role", "Finance").stdout.strip().splitlines()[-1]
        assert key.startswith("lh_")
        keys = json.loads(_leadhub(url, "apikeys", "list", "--json").stdout)
        assert keys[0]["name"] == "dms" and key not in json.dumps(keys) and keys[0]["revoked_at"] is None
        _leadhub(url, "apikeys", "revoke", "dms")
        assert json.loads(_leadhub(url, "apikeys", "list", "--json").stdout)[0]["revoked_at"] is not None
