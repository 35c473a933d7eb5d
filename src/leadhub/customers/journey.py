"""One customer's story: every lead across branches and sources, and what happened on each, in time order.

Read-only. `lead_scope` (an SQL condition on `leads_master`) lets the caller's access rule hide
leads the person may not see; a customer whose leads are all hidden is "not found" to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from leadhub.db.dialect import name_contains
from leadhub.db.models import (
    Branch,
    Call,
    Customer,
    Lead,
    LeadLog,
    LeadQualification,
    LeadSourceHistory,
    Source,
)
from leadhub.phones import PhoneError, parse_phone

# Within one instant, the order a person reads: the enquiry, then its touches, calls and activity.
_KIND_ORDER = {"enquiry": 0, "source_touch": 1, "call": 2, "qualification": 3, "activity": 4}


@dataclass(frozen=True, slots=True)
class JourneyLead:
    id: int
    branch_id: int | None
    branch: str | None
    source_id: int | None
    source: str | None
    status: str | None
    is_lost: bool | None
    assigned_to: int | None
    enquired_at: datetime | None
    next_followup_at: datetime | None


@dataclass(frozen=True, slots=True)
class JourneyEvent:
    at: datetime | None
    lead_id: int
    kind: str  # enquiry | source_touch | call | qualification | activity
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
    ref_id: int = 0  # the row's id in its own table


@dataclass(frozen=True, slots=True)
class Journey:
    customer: Customer
    leads: list[JourneyLead]
    events: list[JourneyEvent]


@dataclass(frozen=True, slots=True)
class CustomerSearch:
    customers: list[Customer]
    truncated: bool  # more matched than `limit`: narrow the query (never silently cut)


def search_customers(
    session: Session,
    query: str,
    *,
    limit: int = 20,
    region: str = "IN",
    lead_scope: ColumnElement[bool] | None = None,
) -> CustomerSearch:
    """A phone in any format finds its one customer; anything else matches names (case-insensitive,
    anywhere in the name). With `lead_scope`, only customers with at least one visible lead."""
    text = " ".join(query.split())
    if not text:
        raise ValueError("search for a phone number or a name")
    try:
        phone = parse_phone(text, region).e164
    except PhoneError:
        phone = None
    stmt = select(Customer)
    if phone is not None:
        stmt = stmt.where(Customer.phone_number_normalized == phone)
    else:
        stmt = stmt.where(name_contains(Customer.full_name, text))
    if lead_scope is not None:
        stmt = stmt.where(select(Lead.id).where(Lead.customer_id == Customer.id, lead_scope).exists())
    rows = list(session.execute(stmt.order_by(Customer.full_name, Customer.id).limit(limit + 1)).scalars())
    return CustomerSearch(customers=rows[:limit], truncated=len(rows) > limit)


def customer_journey(
    session: Session, customer_id: int, *, lead_scope: ColumnElement[bool] | None = None
) -> Journey | None:
    """The journey, or None when the customer does not exist or none of their leads is visible."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    lead_query = (
        select(Lead, Branch.name, Source.display_name)
        .outerjoin(Branch, Branch.id == Lead.branch_id)
        .outerjoin(Source, Source.id == Lead.source_id)
        .where(Lead.customer_id == customer_id)
        .order_by(func.coalesce(Lead.enquired_at, Lead.created_at), Lead.id)
    )
    if lead_scope is not None:
        lead_query = lead_query.where(lead_scope)
    rows = session.execute(lead_query).all()
    if not rows and lead_scope is not None:
        return None
    leads = [
        JourneyLead(
            id=lead.id,
            branch_id=lead.branch_id,
            branch=branch,
            source_id=lead.source_id,
            source=source,
            status=lead.status,
            is_lost=lead.is_lost,
            assigned_to=lead.assigned_to,
            enquired_at=lead.enquired_at or lead.created_at,
            next_followup_at=lead.next_followup_at,
        )
        for lead, branch, source in rows
    ]
    ids = [lead.id for lead in leads]
    events = [
        JourneyEvent(at=lead.enquired_at, lead_id=lead.id, kind="enquiry", ref_id=lead.id,
                     summary=f"Enquiry via {lead.source or 'unknown source'} at {lead.branch or 'no branch'}")
        for lead in leads
    ]  # fmt: skip
    if ids:
        events += _touches(session, ids) + _calls(session, ids) + _qualifications(session, ids)
        events += _activity(session, ids)
    events.sort(key=lambda e: (_sortable(e.at), _KIND_ORDER[e.kind], e.ref_id))
    return Journey(customer=customer, leads=leads, events=events)


def _sortable(at: datetime | None) -> tuple[int, datetime | None]:
    return (1, None) if at is None else (0, at)  # undated rows last


def _touches(session: Session, ids: list[int]) -> list[JourneyEvent]:
    rows = session.execute(
        select(LeadSourceHistory, Source.display_name)
        .outerjoin(Source, Source.id == LeadSourceHistory.source_id)
        .where(LeadSourceHistory.lead_id.in_(ids))
    ).all()
    return [
        JourneyEvent(at=touch.received_at, lead_id=touch.lead_id, kind="source_touch", ref_id=touch.id,
                     summary=f"Enquired again via {source or 'unknown source'}",
                     detail={"external_id": touch.external_id, "source_id": touch.source_id})
        for touch, source in rows
    ]  # fmt: skip


def _calls(session: Session, ids: list[int]) -> list[JourneyEvent]:
    calls = session.execute(select(Call).where(Call.lead_id.in_(ids))).scalars()
    return [
        JourneyEvent(at=call.started_at or call.created_at, lead_id=call.lead_id or 0, kind="call", ref_id=call.id,
                     summary=("Answered" if call.answered else "Missed") + f" {call.direction} call"
                     + (f", {call.duration_seconds}s" if call.duration_seconds else ""),
                     detail={"agent": call.agent, "recording_url": call.recording_url,
                             "virtual_number": call.virtual_number, "call_uuid": call.call_uuid})
        for call in calls
    ]  # fmt: skip


def _qualifications(session: Session, ids: list[int]) -> list[JourneyEvent]:
    rows = session.execute(select(LeadQualification).where(LeadQualification.lead_id.in_(ids))).scalars()
    return [
        JourneyEvent(at=q.qualified_at, lead_id=q.lead_id, kind="qualification", ref_id=q.id,
                     summary="Qualified" + (f": {q.qualified_category}" if q.qualified_category else ""),
                     detail={"model": q.model_interested, "variant": q.variant, "location": q.customer_location,
                             "timeline": q.purchase_timeline, "remarks": q.remarks, "by": q.qualified_by})
        for q in rows
    ]  # fmt: skip


def _activity(session: Session, ids: list[int]) -> list[JourneyEvent]:
    rows = session.execute(select(LeadLog).where(LeadLog.lead_id.in_(ids))).scalars()
    events = []
    for row in rows:
        if row.old_status != row.new_status:
            summary = f"{row.old_status or '—'} → {row.new_status or '—'}"
        else:
            summary = row.remarks or (row.metadata_ or {}).get("action", "activity")
        events.append(
            JourneyEvent(at=row.created_at, lead_id=row.lead_id, kind="activity", ref_id=row.id, summary=summary,
                         detail={"by": row.created_by, "remarks": row.remarks, **(row.metadata_ or {})})
        )  # fmt: skip
    return events
