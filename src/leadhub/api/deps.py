"""Request dependencies: the unit of work per request, settings, the admin key guard and the Actor."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from sqlalchemy.orm import Session, sessionmaker

from leadhub.auth.access import Actor
from leadhub.auth.apikeys import actor_from_api_key
from leadhub.auth.sessions import actor_from_access_token
from leadhub.auth.tokens import looks_like_access_token
from leadhub.config import Settings
from leadhub.db.session import session_scope
from leadhub.errors import AuthenticationError, NotConfiguredError


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    with session_scope(factory) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": commit before the response is sent, so a 2xx always means the write is durable.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def require_admin_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Until staff auth lands, /api is guarded by one admin key (X-API-Key or Authorization: Bearer)."""
    if settings.admin_api_key is None:
        raise NotConfiguredError("the API is disabled: set LEADHUB_ADMIN_API_KEY (see `leadhub config init`)")
    offered = x_api_key
    if offered is None and authorization and authorization.lower().startswith("bearer "):
        offered = authorization[7:].strip()
    expected = settings.admin_api_key.get_secret_value()
    if not offered or not hmac.compare_digest(offered.encode(), expected.encode()):
        raise AuthenticationError("missing or wrong API key: send it as X-API-Key or Authorization: Bearer")


AdminDep = Depends(require_admin_key)


def current_actor(
    session: SessionDep,
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Actor:
    """Who is calling: an access token (Authorization: Bearer), an integration key or the admin key
    (X-API-Key, or Bearer). The same Actor the services use for record-level access."""
    offered = x_api_key
    if offered is None and authorization and authorization.lower().startswith("bearer "):
        offered = authorization[7:].strip()
    if not offered:
        if settings.admin_api_key is None and settings.secret_key is None:
            raise NotConfiguredError(
                "the API is disabled: set LEADHUB_SECRET_KEY (staff logins) or LEADHUB_ADMIN_API_KEY"
            )
        raise AuthenticationError(
            "log in (Authorization: Bearer <access token>) or send an API key as X-API-Key"
        )
    if x_api_key is None and looks_like_access_token(offered):
        return actor_from_access_token(session, offered, settings=settings)
    actor = actor_from_api_key(session, offered, settings=settings)
    if actor is None:
        raise AuthenticationError("missing or wrong API key: send it as X-API-Key or Authorization: Bearer")
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]


# Database ids are bigint: anything larger is answered 422, not handed to the driver (which raises).
MAX_ID = 2**63 - 1
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
