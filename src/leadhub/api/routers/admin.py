"""Administration over HTTP: users and their branches, roles as data, API keys, branches.

The same services as `leadhub users|roles|apikeys`; every route names the permission it needs, and no
one hands out more than they hold (`require_can_grant`): a Developer who manages users cannot make an
Admin, a role manager cannot grant a permission they lack.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from leadhub.api.deps import MAX_ID, ActorDep, PathId, SessionDep
from leadhub.api.routers.auth import RoleOut, UserOut
from leadhub.api.schemas import BranchOut, error_responses
from leadhub.auth import apikeys, roles, users
from leadhub.auth.access import require_can_grant
from leadhub.auth.permissions import Permission
from leadhub.db.models import Branch
from leadhub.errors import ValidationFailed

router = APIRouter(prefix="/api", tags=["admin"])
_ERRORS = error_responses(401, 403, 404, 409, 422)

RoleName = Annotated[str, PathParam(min_length=1, max_length=40)]
KeyName = Annotated[str, PathParam(min_length=1, max_length=100)]


class BranchGrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    branch_id: int = Field(ge=1, le=MAX_ID)
    role: str | None = Field(
        default=None,
        description="The role at this branch: TL, RM, CRE or Receptionist (default: from the user's role)",
    )


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)
    role: str = Field(min_length=1, max_length=40)
    full_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone_number: str | None = Field(default=None, max_length=64)
    branches: list[BranchGrantIn] = Field(default_factory=list, max_length=50)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str | None = Field(default=None, min_length=1, max_length=40)
    full_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    active: bool | None = Field(default=None, description="false blocks login and ends every session")


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024)


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    description: str | None = Field(default=None, max_length=500)
    permissions: list[str] = Field(default_factory=list, max_length=100)


class PermissionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    permissions: list[str] = Field(max_length=100, description="The complete set the role holds afterwards")


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: str = Field(min_length=1, max_length=40, description="The role the key acts as")


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    role: str
    key_prefix: str
    created_at: datetime | None
    revoked_at: datetime | None


class NewApiKeyOut(BaseModel):
    name: str
    role: str
    key: str = Field(description="Shown once: only its SHA-256 is stored")


class BranchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    city: str | None = Field(default=None, max_length=200)


def _user(session: SessionDep, user_id: int) -> UserOut:
    return UserOut(**vars(users.view_user(session, user_id)))


def _role(session: SessionDep, name: str) -> RoleOut:
    return RoleOut(**vars(roles.view_role(session, name)))


@router.post("/users", response_model=UserOut, status_code=201, responses=_ERRORS)
def create_user(body: UserIn, actor: ActorDep, session: SessionDep) -> UserOut:
    """A staff user with a password (argon2) and branch memberships. Needs `users.manage`, and the
    role given must not hold a permission the caller lacks."""
    actor.require(Permission.USERS_MANAGE)
    require_can_grant(session, actor, role=body.role)
    user = users.create_user(
        session,
        username=body.username,
        role=body.role,
        password=body.password,
        full_name=body.full_name,
        email=body.email,
        phone_number=body.phone_number,
        branches=[users.BranchGrant(branch_id=g.branch_id, role=g.role) for g in body.branches],
    )
    return _user(session, user.user_id)


@router.get("/users/{user_id}", response_model=UserOut, responses=_ERRORS)
def get_user(user_id: PathId, actor: ActorDep, session: SessionDep) -> UserOut:
    actor.require(Permission.USERS_VIEW)
    users.get_user_by_id(session, user_id)
    return _user(session, user_id)


@router.patch("/users/{user_id}", response_model=UserOut, responses=_ERRORS)
def update_user(user_id: PathId, body: UserPatch, actor: ActorDep, session: SessionDep) -> UserOut:
    """Change role, name, e-mail or `active`. A new role or a disable ends the user's sessions at once.
    A user whose role holds more than the caller's is left alone (403)."""
    actor.require(Permission.USERS_MANAGE)
    target = users.get_user_by_id(session, user_id)
    require_can_grant(session, actor, role=target.role)
    if body.role is not None:
        require_can_grant(session, actor, role=body.role)
    users.update_user(session, user_id=user_id, role=body.role, full_name=body.full_name, email=body.email,
                      active=body.active)  # fmt: skip
    return _user(session, user_id)


@router.post("/users/{user_id}/password", status_code=204, responses=_ERRORS)
def set_password(user_id: PathId, body: PasswordIn, actor: ActorDep, session: SessionDep) -> None:
    """A new password; every session of the user ends."""
    actor.require(Permission.USERS_MANAGE)
    target = users.get_user_by_id(session, user_id)
    require_can_grant(session, actor, role=target.role)
    users.set_password(session, username=target.username, password=body.password)


@router.post("/users/{user_id}/branches", response_model=UserOut, status_code=201, responses=_ERRORS)
def add_branch(user_id: PathId, body: BranchGrantIn, actor: ActorDep, session: SessionDep) -> UserOut:
    """Make the user a member of a branch (a legacy `branch_members` row); repeating it changes nothing."""
    actor.require(Permission.USERS_MANAGE)
    target = users.get_user_by_id(session, user_id)
    require_can_grant(session, actor, role=target.role)
    users.add_membership(session, user_id=user_id, user_role=target.role,
                         grant=users.BranchGrant(branch_id=body.branch_id, role=body.role))  # fmt: skip
    return _user(session, user_id)


@router.delete("/users/{user_id}/branches/{branch_id}", status_code=204, responses=_ERRORS)
def remove_branch(user_id: PathId, branch_id: PathId, actor: ActorDep, session: SessionDep) -> None:
    """End the user's membership of a branch. The row is kept inactive (handed leads still name it)."""
    actor.require(Permission.USERS_MANAGE)
    require_can_grant(session, actor, role=users.get_user_by_id(session, user_id).role)
    users.remove_membership(session, user_id=user_id, branch_id=branch_id)


@router.post("/roles", response_model=RoleOut, status_code=201, responses=_ERRORS)
def create_role(body: RoleIn, actor: ActorDep, session: SessionDep) -> RoleOut:
    """A role defined as data (Finance, Service, ...) with a set of permissions; no code change."""
    actor.require(Permission.ROLES_MANAGE)
    require_can_grant(session, actor, permissions=frozenset(body.permissions))
    role = roles.create_role(
        session, name=body.name, description=body.description, permissions=body.permissions
    )
    return _role(session, role.name)


@router.put("/roles/{name}/permissions", response_model=RoleOut, responses=_ERRORS)
def set_permissions(name: RoleName, body: PermissionsIn, actor: ActorDep, session: SessionDep) -> RoleOut:
    """Set exactly the permissions a role holds. Takes effect on its users' next request."""
    actor.require(Permission.ROLES_MANAGE)
    roles.get_role(session, name)
    require_can_grant(session, actor, role=name, permissions=frozenset(body.permissions))
    roles.set_permissions(session, role=name, permissions=body.permissions)
    return _role(session, name)


@router.get("/api-keys", response_model=list[ApiKeyOut], responses=_ERRORS)
def list_api_keys(actor: ActorDep, session: SessionDep) -> list[ApiKeyOut]:
    actor.require(Permission.APIKEYS_MANAGE)
    return [ApiKeyOut.model_validate(k) for k in apikeys.list_api_keys(session)]


@router.post("/api-keys", response_model=NewApiKeyOut, status_code=201, responses=_ERRORS)
def create_api_key(body: ApiKeyIn, actor: ActorDep, session: SessionDep) -> NewApiKeyOut:
    """A key for an integration, acting as a role. The key is in this answer only."""
    actor.require(Permission.APIKEYS_MANAGE)
    require_can_grant(session, actor, role=body.role)
    new = apikeys.create_api_key(session, name=body.name, role=body.role)
    return NewApiKeyOut(name=new.name, role=new.role, key=new.key)


@router.delete("/api-keys/{name}", status_code=204, responses=_ERRORS)
def revoke_api_key(name: KeyName, actor: ActorDep, session: SessionDep) -> None:
    """Revoke a key at once; its name stays taken so logs keep meaning one integration."""
    actor.require(Permission.APIKEYS_MANAGE)
    apikeys.revoke_api_key(session, name=name)


@router.post("/branches", response_model=BranchOut, status_code=201, responses=_ERRORS)
def create_branch(body: BranchIn, actor: ActorDep, session: SessionDep) -> BranchOut:
    """A new branch (active). Needs `config.manage`."""
    actor.require(Permission.CONFIG_MANAGE)
    if not body.name.strip():
        raise ValidationFailed("a branch needs a name")
    branch = Branch(name=body.name.strip(), city=(body.city or "").strip() or None, is_active=True)
    session.add(branch)
    session.flush()
    return BranchOut.model_validate(branch)
