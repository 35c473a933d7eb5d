"""Reasons a lead is pending, lost or disqualified: admin-managed master data in `lead_reasons`.

Lose and disqualify take a reason code that must be an active reason of the matching kind; the code
and its label go into the activity row, so a later relabel never rewrites history.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadhub.db.dialect import upsert
from leadhub.db.models import LeadReason
from leadhub.db.types import utcnow
from leadhub.errors import NotFoundError, ValidationFailed


class ReasonKind(StrEnum):
    PENDING = "pending"
    LOST = "lost"
    DISQUALIFIED = "disqualified"


class InvalidReasonError(ValidationFailed):
    code = "invalid_reason"


# The legacy reasons (RNR, CallBackRequested, NotInterested, Just enquired, Price Concern, Call
# Disconnected, Still Thinking: legacy-app.md §1.12, §1.15, §4.1) plus the common dealership ones.
# Revision 0008 seeds the same list (frozen there).
DEFAULT_REASONS: tuple[tuple[ReasonKind, str, str], ...] = (
    (ReasonKind.PENDING, "RNR", "Ringing, no response"),
    (ReasonKind.PENDING, "CallBackRequested", "Customer asked to call back"),
    (ReasonKind.PENDING, "CallDisconnected", "Call disconnected"),
    (ReasonKind.PENDING, "StillThinking", "Still thinking"),
    (ReasonKind.PENDING, "JustEnquired", "Just enquired"),
    (ReasonKind.LOST, "PriceConcern", "Price concern"),
    (ReasonKind.LOST, "BoughtCompetitor", "Bought another brand"),
    (ReasonKind.LOST, "BoughtElsewhere", "Bought from another dealer"),
    (ReasonKind.LOST, "FinanceNotApproved", "Finance not approved"),
    (ReasonKind.LOST, "PlanDropped", "Purchase plan dropped or postponed"),
    (ReasonKind.LOST, "NoResponse", "No response after repeated attempts"),
    (ReasonKind.DISQUALIFIED, "NotInterested", "Not interested"),
    (ReasonKind.DISQUALIFIED, "WrongNumber", "Wrong or invalid number"),
    (ReasonKind.DISQUALIFIED, "JobSeeker", "Job seeker or vendor, not a buyer"),
    (ReasonKind.DISQUALIFIED, "DuplicateEnquiry", "Duplicate enquiry"),
    (ReasonKind.DISQUALIFIED, "OutOfArea", "Outside our service area"),
)


def seed_default_reasons(session: Session) -> None:
    """Insert the default reasons that are missing; never touches an existing (possibly edited) one."""
    now = utcnow()
    rows = [
        {
            "kind": kind.value,
            "code": code,
            "label": label,
            "is_active": True,
            "display_order": order,
            "created_at": now,
            "updated_at": now,
        }
        for order, (kind, code, label) in enumerate(DEFAULT_REASONS)
    ]
    session.execute(upsert(session, LeadReason).values(rows).on_conflict_do_nothing())


def list_reasons(
    session: Session, *, kind: ReasonKind | None = None, include_inactive: bool = False
) -> Sequence[LeadReason]:
    query = select(LeadReason).order_by(LeadReason.kind, LeadReason.display_order, LeadReason.id)
    if kind is not None:
        query = query.where(LeadReason.kind == kind.value)
    if not include_inactive:
        query = query.where(LeadReason.is_active.is_(True))
    return session.execute(query).scalars().all()


def add_reason(session: Session, *, kind: ReasonKind, code: str, label: str) -> LeadReason:
    code, label = code.strip(), label.strip()
    if not code or not label:
        raise InvalidReasonError("a reason needs a code and a label")
    now = utcnow()
    inserted = session.execute(
        upsert(session, LeadReason)
        .values(kind=kind.value, code=code, label=label, is_active=True, created_at=now, updated_at=now)
        .on_conflict_do_nothing()
        .returning(LeadReason.id)
    ).scalar_one_or_none()
    if inserted is None:
        raise InvalidReasonError(f"a {kind.value} reason with code {code!r} already exists")
    return session.get_one(LeadReason, inserted)


def set_reason_active(session: Session, *, kind: ReasonKind, code: str, active: bool) -> LeadReason:
    """Deactivated reasons stay in history but can no longer be chosen."""
    reason = session.execute(
        select(LeadReason).where(LeadReason.kind == kind.value, LeadReason.code == code)
    ).scalar_one_or_none()
    if reason is None:
        raise NotFoundError(f"no {kind.value} reason with code {code!r}")
    reason.is_active = active
    reason.updated_at = utcnow()
    session.flush()
    return reason


def require_reason(session: Session, kind: ReasonKind, code: str | None) -> LeadReason:
    """The active reason `code` of `kind`, or a clear error listing the choices."""
    if code is None or not code.strip():
        raise InvalidReasonError(f"a {kind.value} reason is required", kind=kind.value)
    reason = session.execute(
        select(LeadReason).where(
            LeadReason.kind == kind.value, LeadReason.code == code.strip(), LeadReason.is_active.is_(True)
        )
    ).scalar_one_or_none()
    if reason is None:
        choices = [r.code for r in list_reasons(session, kind=kind)]
        raise InvalidReasonError(
            f"{code!r} is not an active {kind.value} reason (choose one of: {', '.join(choices) or 'none defined'})",
            kind=kind.value,
            reason=code,
        )
    return reason
