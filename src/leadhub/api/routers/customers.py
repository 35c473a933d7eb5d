"""Customers: search by phone or name, and one customer's journey; branches and sources."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from leadhub.api.deps import ActorDep, PathId, SessionDep, SettingsDep
from leadhub.api.schemas import (
    BranchOut,
    CustomerOut,
    CustomerSearchOut,
    JourneyEventOut,
    JourneyLeadOut,
    JourneyOut,
    LeadOut,
    SourceOut,
    error_responses,
)
from leadhub.auth.access import lead_scope
from leadhub.auth.permissions import Permission
from leadhub.customers.journey import customer_journey, search_customers
from leadhub.db.models import Branch, Lead, Source
from leadhub.errors import NotFoundError, PermissionDenied
from leadhub.phones import PhoneError, parse_phone

router = APIRouter(prefix="/api", tags=["customers"])
_ERRORS = error_responses(401, 403, 404, 422)


@router.get("/customers", response_model=CustomerSearchOut, responses=_ERRORS)
def find_customers(
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
    q: Annotated[
        str,
        Query(min_length=1, max_length=100, pattern=r"\S", description="A phone in any format, or a name"),
    ],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CustomerSearchOut:
    """Customers with at least one lead the caller may see. Reception (`customers.search_phone`)
    finds any customer by phone and sees all their enquiries, to attach a walk-in to the right one."""
    try:
        parse_phone(q, settings.phone_region)
        by_phone = True
    except PhoneError:
        by_phone = False
    if by_phone and actor.has(Permission.CUSTOMERS_SEARCH_PHONE):
        found = search_customers(session, q, limit=limit, region=settings.phone_region)
        enquiries = []
        if found.customers:
            leads = session.execute(
                select(Lead).where(Lead.customer_id == found.customers[0].id).order_by(Lead.id)
            ).scalars()
            enquiries = [LeadOut.model_validate(lead) for lead in leads]
        return CustomerSearchOut(items=[CustomerOut.model_validate(c) for c in found.customers],
                                 truncated=found.truncated, enquiries=enquiries)  # fmt: skip
    if not _sees_leads(actor):
        if actor.has(Permission.CUSTOMERS_SEARCH_PHONE):
            raise PermissionDenied(f"your role ({actor.role}) may search customers by phone only")
        raise PermissionDenied(f"your role ({actor.role}) sees no leads and lacks customers.search_phone")
    found = search_customers(
        session, q, limit=limit, region=settings.phone_region, lead_scope=lead_scope(actor)
    )
    return CustomerSearchOut(
        items=[CustomerOut.model_validate(c) for c in found.customers], truncated=found.truncated
    )


@router.get("/customers/{customer_id}/journey", response_model=JourneyOut, responses=_ERRORS)
def journey(customer_id: PathId, actor: ActorDep, session: SessionDep) -> JourneyOut:
    """Every lead of the customer the caller may see, with calls, source touches, qualification and
    activity in time order. A customer with no visible lead answers 404."""
    story = customer_journey(session, customer_id, lead_scope=lead_scope(actor))
    if story is None:
        raise NotFoundError(f"customer {customer_id} not found")
    return JourneyOut(
        customer=CustomerOut.model_validate(story.customer),
        leads=[JourneyLeadOut.model_validate(lead) for lead in story.leads],
        events=[JourneyEventOut.model_validate(event) for event in story.events],
    )


@router.get("/branches", response_model=list[BranchOut], responses=_ERRORS)
def branches(actor: ActorDep, session: SessionDep) -> list[BranchOut]:
    """Every branch (names are not secret to staff)."""
    del actor  # authenticated is enough
    return [
        BranchOut.model_validate(b) for b in session.execute(select(Branch).order_by(Branch.id)).scalars()
    ]


@router.get("/sources", response_model=list[SourceOut], responses=_ERRORS)
def sources(actor: ActorDep, session: SessionDep) -> list[SourceOut]:
    """Every lead source."""
    del actor
    return [
        SourceOut.model_validate(s) for s in session.execute(select(Source).order_by(Source.id)).scalars()
    ]


def _sees_leads(actor: ActorDep) -> bool:
    views = (Permission.LEADS_VIEW_ALL, Permission.LEADS_VIEW_BRANCH, Permission.LEADS_VIEW_TEAM,
             Permission.LEADS_VIEW_ASSIGNED, Permission.LEADS_VIEW_HANDED, Permission.WALKINS_VIEW_BRANCH)  # fmt: skip
    return any(actor.has(p) for p in views)
