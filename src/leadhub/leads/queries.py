"""Lead lists with filters and keyset (cursor) pagination, inside an access scope.

Newest first by id. The cursor is the last id of the page, opaque to clients; a page says whether
more follow, so no list is ever cut short without saying so.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from leadhub.db.dialect import name_contains
from leadhub.db.models import Lead
from leadhub.errors import ValidationFailed
from leadhub.phones import PhoneError, parse_phone

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class LeadFilters:
    branch_id: int | None = None
    source_id: int | None = None
    assigned_to: int | None = None
    unassigned: bool = False
    customer_id: int | None = None
    status: str | None = None  # the legacy column, case-insensitive
    enquired_from: datetime | None = None
    enquired_to: datetime | None = None
    q: str | None = None  # a phone in any format (exact), or part of a name


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Lead]
    next_cursor: str | None


def encode_cursor(lead_id: int) -> str:
    return base64.urlsafe_b64encode(f"lead:{lead_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "lead":
            raise ValueError(kind)
        return int(value)
    except ValueError as error:
        raise ValidationFailed("the cursor is not one this API gave out; start again without it") from error


def filtered(scope: ColumnElement[bool], filters: LeadFilters, *, region: str = "IN") -> Select[Lead]:
    query = select(Lead).where(scope)
    f = filters
    if f.branch_id is not None:
        query = query.where(Lead.branch_id == f.branch_id)
    if f.source_id is not None:
        query = query.where(Lead.source_id == f.source_id)
    if f.assigned_to is not None:
        query = query.where(Lead.assigned_to == f.assigned_to)
    if f.unassigned:
        query = query.where(Lead.assigned_to.is_(None))
    if f.customer_id is not None:
        query = query.where(Lead.customer_id == f.customer_id)
    if f.status is not None:
        query = query.where(func.lower(Lead.status) == f.status.strip().lower())
    if f.enquired_from is not None:
        query = query.where(Lead.enquired_at >= f.enquired_from)
    if f.enquired_to is not None:
        query = query.where(Lead.enquired_at < f.enquired_to)
    if f.q:
        try:
            query = query.where(Lead.phone_number_normalized == parse_phone(f.q, region).e164)
        except PhoneError:
            query = query.where(name_contains(Lead.full_name, f.q))
    return query


def list_leads(
    session: Session,
    scope: ColumnElement[bool],
    filters: LeadFilters,
    *,
    cursor: str | None = None,
    limit: int = 50,
    region: str = "IN",
) -> Page:
    return page(session, filtered(scope, filters, region=region), cursor=cursor, limit=limit)


def page(session: Session, query: Select[Lead], *, cursor: str | None = None, limit: int = 50) -> Page:
    """One page of `query`'s leads, newest first by id, after `cursor` (any ordering it had is replaced)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}")
    if cursor is not None:
        query = query.where(Lead.id < decode_cursor(cursor))
    rows = list(session.execute(query.order_by(None).order_by(Lead.id.desc()).limit(limit + 1)).scalars())
    items = rows[:limit]
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)
