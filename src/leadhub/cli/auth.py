"""`leadhub users|roles|apikeys`: staff accounts, roles as data, integration keys.

Passwords come from a hidden prompt or, with --password-stdin, from standard input: never from an
argument, which would land in the shell history and the process list.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from leadhub.auth import apikeys, roles, sessions, users
from leadhub.cli.main import _settings, app, out
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.errors import ValidationFailed

users_app = typer.Typer(no_args_is_help=True, help="Staff users: create, list, disable, set a password.")
roles_app = typer.Typer(no_args_is_help=True, help="Roles and their permissions (built-in and your own).")
apikeys_app = typer.Typer(no_args_is_help=True, help="API keys for integrations, each acting as a role.")
app.add_typer(users_app, name="users")
app.add_typer(roles_app, name="roles")
app.add_typer(apikeys_app, name="apikeys")

T = TypeVar("T")
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input (first line)")
]


@contextmanager
def _unit() -> Iterator[Session]:
    engine = make_engine(_settings().database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _run(work: Callable[[Session], T]) -> T:
    with _unit() as session:
        return work(session)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ValidationFailed("--password-stdin: standard input had no password on its first line")
        return password
    prompted: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return prompted


def _branch_grants(values: list[str]) -> list[users.BranchGrant]:
    grants = []
    for value in values:
        branch, _, role = value.partition(":")
        if not branch.strip().isdigit():
            raise ValidationFailed(f"--branch {value!r}: give a branch id, optionally with :ROLE (e.g. 3:RM)")
        grants.append(users.BranchGrant(branch_id=int(branch), role=role.strip() or None))
    return grants


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[str, typer.Option(help="A role name (see `leadhub roles list`)")],
    branch: Annotated[
        list[str] | None,
        typer.Option(help="Branch id, or id:ROLE with ROLE one of TL, RM, CRE, Receptionist (repeatable)"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Full name")] = None,
    email: str | None = None,
    phone: str | None = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a staff user with an argon2 password hash and their branch memberships."""
    grants = _branch_grants(branch or [])
    password = _read_password(password_stdin)
    user = _run(
        lambda s: users.create_user(
            s,
            username=username,
            role=role,
            password=password,
            full_name=name,
            email=email,
            phone_number=phone,
            branches=grants,
        )
    )
    out.print(f"created user {user.username} (id {user.user_id}, role {user.role})")


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every user with role, status and active branch memberships."""
    rows = _run(users.list_users)
    if as_json:
        typer.echo(json.dumps([vars(r) for r in rows], indent=2))
        return
    table = Table("id", "username", "role", "name", "active", "branches")
    for r in rows:
        branches = ", ".join(f"{b['branch']} ({b['role']})" for b in r.branches)
        table.add_row(
            str(r.user_id), r.username, r.role, r.full_name or "", "yes" if r.active else "no", branches
        )
    out.print(table)
    out.print(f"{len(rows)} user(s)")


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Block the user's logins and end every session they have (the legacy app honours it too)."""
    _run(lambda s: users.disable_user(s, username=username))
    out.print(f"disabled {username}; their sessions are ended")


@users_app.command("set-password")
def users_set_password(username: str, password_stdin: PasswordStdin = False) -> None:
    """Set a new password (argon2); the user's existing sessions are ended."""
    password = _read_password(password_stdin)
    _run(lambda s: users.set_password(s, username=username, password=password))
    out.print(f"password set for {username}; their sessions are ended")


@users_app.command("purge-logins")
def users_purge_logins(
    keep_days: Annotated[int, typer.Option(help="Keep this many days of failed logins and old tokens")] = 30,
) -> None:
    """Delete failed-login records and expired or revoked refresh tokens older than --keep-days, in
    short batches (run it daily from cron or a systemd timer)."""
    engine = make_engine(_settings().database_url)
    try:
        done = sessions.purge(make_session_factory(engine), keep_days=keep_days)
    except ValidationFailed as error:
        out.print(f"[red]{error.message}[/red]")
        raise typer.Exit(2) from error
    finally:
        engine.dispose()
    out.print(f"purged {done.login_failures} failed-login records and {done.refresh_tokens} refresh tokens "
              f"older than {keep_days} days")  # fmt: skip


@roles_app.command("list")
def roles_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Roles with their permissions."""
    rows = _run(roles.list_roles)
    if as_json:
        typer.echo(json.dumps([vars(r) for r in rows], indent=2))
        return
    table = Table("role", "built in", "permissions", "description")
    for r in rows:
        table.add_row(r.name, "yes" if r.built_in else "", ", ".join(r.permissions), r.description or "")
    out.print(table)


@roles_app.command("create")
def roles_create(
    name: str,
    permission: Annotated[list[str] | None, typer.Option("--permission", "-p", help="Repeatable")] = None,
    description: str | None = None,
) -> None:
    """Define a new role (e.g. Finance) as a set of permissions."""
    _run(lambda s: roles.create_role(s, name=name, description=description, permissions=permission or []))
    out.print(f"created role {name}")


@roles_app.command("grant")
def roles_grant(role: str, permissions: list[str]) -> None:
    """Add permissions to a role."""
    _run(lambda s: roles.grant(s, role=role, permissions=permissions))
    out.print(f"granted {', '.join(permissions)} to {role}")


@roles_app.command("revoke")
def roles_revoke(role: str, permissions: list[str]) -> None:
    """Take permissions from a role (not from Admin, which always holds every permission)."""
    _run(lambda s: roles.revoke(s, role=role, permissions=permissions))
    out.print(f"revoked {', '.join(permissions)} from {role}")


@apikeys_app.command("create")
def apikeys_create(name: str, role: Annotated[str, typer.Option(help="The role the key acts as")]) -> None:
    """Create a key for an integration. The key is printed once, on standard output; only its hash is kept."""
    created = _run(lambda s: apikeys.create_api_key(s, name=name, role=role))
    out.print(
        f"created API key {created.name} (role {created.role}); store it now, it is not shown again:",
        style="bold",
    )
    typer.echo(created.key)


@apikeys_app.command("list")
def apikeys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Keys by name, with role, prefix and whether revoked (never the key)."""
    rows = [
        {"name": k.name, "role": k.role, "prefix": k.key_prefix, "created_at": k.created_at.isoformat(),
         "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
        for k in _run(apikeys.list_api_keys)
    ]  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "role", "prefix", "created", "revoked")
    for r in rows:
        table.add_row(*(str(r[k] or "") for k in ("name", "role", "prefix", "created_at", "revoked_at")))
    out.print(table)


@apikeys_app.command("revoke")
def apikeys_revoke(name: str) -> None:
    """Revoke a key at once."""
    _run(lambda s: apikeys.revoke_api_key(s, name=name))
    out.print(f"revoked API key {name}")
