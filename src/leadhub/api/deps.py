"""Request dependencies: the unit of work per request, settings, and the admin API key guard."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session, sessionmaker

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
