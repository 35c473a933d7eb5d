"""What an open lead is, defined once and used by every channel rule and query.

Derived from the lifecycle vocabulary (leads/lifecycle.py): a lead is open unless its state is
terminal (won, closed, lost, disqualified). `open_lead_clause()` is `state_of` restricted to that one
question, in SQL, so a query and a loaded row always agree.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute

from leadhub.db.models import Lead, LeadQualification
from leadhub.leads.lifecycle import (
    LEGACY_PREFIXES,
    LEGACY_STATUSES,
    QUALIFIED_FAMILY,
    TERMINAL_STATES,
    LeadState,
    is_open_state,
    legacy_columns,
    state_of,
)

NEW = legacy_columns(LeadState.NEW).status
_TERMINAL_NAMES = sorted(s for s, state in LEGACY_STATUSES.items() if state in TERMINAL_STATES)
_TERMINAL_PREFIXES = sorted(p for p, state in LEGACY_PREFIXES if state in TERMINAL_STATES)
_QUALIFIED_NAMES = sorted(s for s, state in LEGACY_STATUSES.items() if state in QUALIFIED_FAMILY)


def open_lead_clause() -> ColumnElement[bool]:
    """SQL: the lead's state is not terminal (the same precedence as `state_of`)."""
    status = func.lower(func.trim(func.coalesce(Lead.status, "")))
    retailed = _latest_flag(LeadQualification.retailed)  # the row `workflow` reads: the latest
    return and_(
        or_(Lead.is_lost.is_(None), Lead.is_lost == false()),
        status.not_in(_TERMINAL_NAMES),
        *(not_(status.like(f"{prefix}%")) for prefix in _TERMINAL_PREFIXES),
        not_(and_(or_(Lead.is_qualified == true(), status.in_(_QUALIFIED_NAMES)), retailed)),
    )


def is_open(
    status: str | None,
    is_lost: bool | None,
    *,
    is_qualified: bool | None = None,
    retailed: bool | None = None,
) -> bool:
    """The same rule in Python, for rows already loaded."""
    return is_open_state(state_of(status, is_lost=is_lost, is_qualified=is_qualified, retailed=retailed))


def _latest_flag(column: InstrumentedAttribute[bool | None]) -> ColumnElement[bool]:
    """The flag on the lead's latest qualification row (the row `workflow` reads), true or not."""
    latest = (
        select(column)
        .where(LeadQualification.lead_id == Lead.id)
        .order_by(LeadQualification.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(latest, false()).is_(true())


def state_clause(state: LeadState) -> ColumnElement[bool]:
    """SQL: the lead's state is `state`, with the precedence of `lifecycle.state_of` (tested row by row
    against it over every legacy row shape). For queues such as the CRE tabs; `open_lead_clause` stays
    the intake's rule."""
    s = func.lower(func.trim(func.coalesce(Lead.status, "")))
    known = list(LEGACY_STATUSES)

    def named(target: LeadState) -> ColumnElement[bool]:
        exact = [name for name, st in LEGACY_STATUSES.items() if st is target]
        prefixes = [p for p, st in LEGACY_PREFIXES if st is target]
        parts: list[ColumnElement[bool]] = [s.in_(exact)] if exact else []
        if prefixes:
            parts.append(and_(s.not_in(known), or_(*(s.like(f"{p}%") for p in prefixes))))
        return or_(*parts) if parts else false()

    lost_flag = Lead.is_lost.is_(true())
    terminal = or_(*(named(t) for t in TERMINAL_STATES))
    qualified = or_(Lead.is_qualified.is_(true()), *(named(q) for q in QUALIFIED_FAMILY))
    retailed = _latest_flag(LeadQualification.retailed)
    booked = or_(_latest_flag(LeadQualification.booked), named(LeadState.BOOKED))
    test_drive = or_(_latest_flag(LeadQualification.test_drive), named(LeadState.TEST_DRIVE))
    live = and_(not_(lost_flag), not_(terminal))  # neither lost by flag nor ended by name
    S = LeadState
    if state is S.LOST:
        return or_(and_(lost_flag, not_(named(S.DISQUALIFIED))), and_(not_(lost_flag), named(S.LOST)))
    if state is S.DISQUALIFIED:
        return named(S.DISQUALIFIED)
    if state is S.CLOSED:
        return and_(not_(lost_flag), named(S.CLOSED))
    if state is S.WON:
        return and_(not_(lost_flag), or_(named(S.WON), and_(not_(terminal), qualified, retailed)))
    if state is S.BOOKED:
        return and_(live, qualified, not_(retailed), booked)
    if state is S.TEST_DRIVE:
        return and_(live, qualified, not_(retailed), not_(booked), test_drive)
    if state is S.QUALIFIED:
        return and_(live, qualified, not_(retailed), not_(booked), not_(test_drive))
    if state is S.CONTACTED:
        unknown = and_(s.not_in(known), *(not_(s.like(f"{p}%")) for p, _ in LEGACY_PREFIXES))
        return and_(live, not_(qualified), or_(named(S.CONTACTED), unknown))
    return and_(live, not_(qualified), named(state))  # new, pending
