"""What an open lead is, defined once and used by every channel rule and query.

Derived from the lifecycle vocabulary (leads/lifecycle.py): a lead is open unless its state is
terminal (won, closed, lost, disqualified). `open_lead_clause()` is `state_of` restricted to that one
question, in SQL, so a query and a loaded row always agree.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, true

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
    retailed = exists(
        select(LeadQualification.id).where(
            LeadQualification.lead_id == Lead.id, LeadQualification.retailed == true()
        )
    )
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
