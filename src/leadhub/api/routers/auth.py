"""Staff auth over HTTP: login, refresh, logout, me; users and roles lists. Logic lives in leadhub.auth."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from leadhub.api.deps import ActorDep, SessionDep, SettingsDep
from leadhub.api.errors import error_response
from leadhub.api.schemas import ErrorOut
from leadhub.auth import roles, sessions, users
from leadhub.auth.permissions import Permission
from leadhub.auth.sessions import TokenPair

router = APIRouter(prefix="/api", tags=["auth"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut},
    429: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth2 token type, not a secret)
    expires_in: int
    refresh_expires_at: datetime


class MembershipOut(BaseModel):
    member_id: int
    branch_id: int
    role: str


class MeOut(BaseModel):
    user_id: int | None
    username: str | None
    role: str
    permissions: list[str]
    branches: list[MembershipOut]
    via: str


class UserOut(BaseModel):
    user_id: int
    username: str
    role: str
    full_name: str | None
    email: str | None
    active: bool
    branches: list[dict[str, object]]


class RoleOut(BaseModel):
    name: str
    built_in: bool
    description: str | None
    permissions: list[str]


def _tokens(pair: TokenPair) -> TokensOut:
    return TokensOut(access_token=pair.access_token, refresh_token=pair.refresh_token,
                     expires_in=pair.expires_in, refresh_expires_at=pair.refresh_expires_at)  # fmt: skip


@router.post("/auth/login", response_model=TokensOut, responses=_ERRORS)
def login(
    body: LoginIn, request: Request, session: SessionDep, settings: SettingsDep
) -> TokensOut | JSONResponse:
    """Username and password for a short-lived access token and a rotating refresh token.
    Failed attempts are limited per username and per client address (429 with Retry-After)."""
    client_ip = request.client.host if request.client else None
    result = sessions.login(
        session, username=body.username, password=body.password, client_ip=client_ip, settings=settings
    )
    # Answered, not raised: the failed attempt must commit with this request to count.
    return error_response(result) if not isinstance(result, TokenPair) else _tokens(result)


@router.post("/auth/refresh", response_model=TokensOut, responses=_ERRORS)
def refresh(body: RefreshIn, session: SessionDep, settings: SettingsDep) -> TokensOut | JSONResponse:
    """Spend a refresh token for a new pair. Reusing a spent one ends that login everywhere."""
    result = sessions.refresh(session, refresh_token=body.refresh_token, settings=settings)
    return error_response(result) if not isinstance(result, TokenPair) else _tokens(result)


@router.post("/auth/logout", status_code=204, responses=_ERRORS)
def logout(actor: ActorDep, session: SessionDep) -> None:
    """End this login: its refresh tokens and its access tokens stop working at once."""
    sessions.logout(session, actor=actor)


@router.get("/auth/me", response_model=MeOut, responses=_ERRORS)
def me(actor: ActorDep) -> MeOut:
    return MeOut(
        user_id=actor.user_id,
        username=actor.username,
        role=actor.role,
        permissions=sorted(actor.permissions),
        branches=[
            MembershipOut(member_id=m.member_id, branch_id=m.branch_id, role=m.role)
            for m in actor.memberships
        ],
        via=actor.via,
    )


@router.get("/users", response_model=list[UserOut], responses={**_ERRORS, 403: {"model": ErrorOut}})
def list_users(actor: ActorDep, session: SessionDep) -> list[UserOut]:
    actor.require(Permission.USERS_VIEW)
    return [UserOut(**vars(u)) for u in users.list_users(session)]


@router.get("/roles", response_model=list[RoleOut], responses={**_ERRORS, 403: {"model": ErrorOut}})
def list_roles(actor: ActorDep, session: SessionDep) -> list[RoleOut]:
    actor.require(Permission.USERS_VIEW)
    return [RoleOut(**vars(r)) for r in roles.list_roles(session)]
