"""Roles as data: list, create, grant, revoke. Built-in roles cannot be deleted; Admin cannot be narrowed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from leadhub.auth.permissions import ADMIN, ALL_PERMISSIONS, BUILT_IN_ROLES
from leadhub.db.dialect import upsert
from leadhub.db.models import Role, RolePermission
from leadhub.errors import ConflictError, NotFoundError, ValidationFailed

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ -]{0,39}$")


@dataclass(frozen=True)
class RoleView:
    name: str
    built_in: bool
    description: str | None
    permissions: list[str]


def _check_permissions(permissions: list[str]) -> list[str]:
    unknown = sorted(set(permissions) - ALL_PERMISSIONS)
    if unknown:
        raise ValidationFailed(
            f"unknown permission(s): {', '.join(unknown)}; known: {', '.join(sorted(ALL_PERMISSIONS))}"
        )
    return sorted(set(permissions))


def get_role(session: Session, name: str) -> Role:
    role = session.get(Role, name)
    if role is None:
        raise NotFoundError(f"no role named {name!r} (see `leadhub roles list`)")
    return role


def list_roles(session: Session) -> list[RoleView]:
    roles = session.execute(select(Role).order_by(Role.built_in.desc(), Role.name)).scalars().all()
    grants: dict[str, list[str]] = {}
    for row in session.execute(select(RolePermission).order_by(RolePermission.permission)).scalars():
        grants.setdefault(row.role, []).append(row.permission)
    return [
        RoleView(
            name=r.name,
            built_in=r.built_in,
            description=r.description,
            permissions=sorted(ALL_PERMISSIONS) if r.name == ADMIN else grants.get(r.name, []),
        )
        for r in roles
    ]


def create_role(session: Session, *, name: str, description: str | None, permissions: list[str]) -> Role:
    if not _NAME.match(name):
        raise ValidationFailed(
            "a role name starts with a letter and has up to 40 letters, digits, _ - or spaces"
        )
    wanted = _check_permissions(permissions)
    created = session.execute(
        upsert(session, Role)
        .values(name=name, built_in=False, description=description)
        .on_conflict_do_nothing()
        .returning(Role.name)
    ).first()
    if created is None:
        raise ConflictError(f"a role named {name!r} already exists")
    _grant(session, name, wanted)
    role = session.get(Role, name)
    assert role is not None
    return role


def _grant(session: Session, role: str, permissions: list[str]) -> None:
    if permissions:
        session.execute(
            upsert(session, RolePermission)
            .values([{"role": role, "permission": p} for p in permissions])
            .on_conflict_do_nothing()
        )


def grant(session: Session, *, role: str, permissions: list[str]) -> None:
    get_role(session, role)
    _grant(session, role, _check_permissions(permissions))


def revoke(session: Session, *, role: str, permissions: list[str]) -> None:
    get_role(session, role)
    if role == ADMIN:
        raise ValidationFailed("Admin always holds every permission; create a narrower role instead")
    wanted = _check_permissions(permissions)
    session.execute(
        delete(RolePermission).where(RolePermission.role == role, RolePermission.permission.in_(wanted))
    )


def seed_built_in_roles(session: Session) -> None:
    """Insert any missing built-in role with its default permissions (revision 0007 does this once).
    A built-in role that exists is left as it is, so permissions changed as data stay changed."""
    for name, (description, permissions) in BUILT_IN_ROLES.items():
        created = session.execute(
            upsert(session, Role)
            .values(name=name, built_in=True, description=description)
            .on_conflict_do_nothing()
            .returning(Role.name)
        ).first()
        if created is not None:
            _grant(session, name, sorted(permissions))


def set_permissions(session: Session, *, role: str, permissions: list[str]) -> None:
    """Make the role hold exactly `permissions` (grant what is missing, revoke the rest)."""
    get_role(session, role)
    wanted = set(_check_permissions(permissions))
    if role == ADMIN:
        if wanted != ALL_PERMISSIONS:
            raise ValidationFailed("Admin always holds every permission; create a narrower role instead")
        return
    held = set(
        session.execute(select(RolePermission.permission).where(RolePermission.role == role)).scalars()
    )
    _grant(session, role, sorted(wanted - held))
    if held - wanted:
        session.execute(
            delete(RolePermission).where(
                RolePermission.role == role, RolePermission.permission.in_(sorted(held - wanted))
            )
        )


def view_role(session: Session, name: str) -> RoleView:
    get_role(session, name)
    return next(r for r in list_roles(session) if r.name == name)
