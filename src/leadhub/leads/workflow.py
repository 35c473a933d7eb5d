"""Lead lifecycle services: each call is one transaction's worth of work on one lead (flush, the caller
commits) and writes exactly one append-only `leads_logs` row (who, when, from, to, why).

Every service first locks the lead row (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the write
transaction already began with BEGIN IMMEDIATE), reads its state with `lifecycle.state_of`, asks the
transition table for the next state, and writes the legacy columns for it with one UPDATE. The attempt
counter is incremented in that UPDATE (`total_attempts = coalesce(total_attempts, 0) + 1`), never
read-modify-write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from leadhub.db.models import Lead, LeadLog, LeadQualification, User
from leadhub.db.types import utcnow
from leadhub.errors import NotFoundError, ValidationFailed
from leadhub.leads.lifecycle import (
    QUALIFIED_FAMILY,
    TERMINAL_STATES,
    Action,
    LeadState,
    legacy_columns,
    next_state,
    state_of,
)
from leadhub.leads.reasons import ReasonKind, require_reason

_LEADS: Table = Lead.__table__  # type: ignore[assignment]
_LOGS: Table = LeadLog.__table__  # type: ignore[assignment]

# metadata.action values, reusing the legacy app's names where it had one (legacy-app.md §1.6), so its
# dashboards that count `metadata->>action` keep counting.
_LEGACY_ACTION = {
    Action.LOG_CALL: "call_attempt",
    Action.SET_PENDING: "lead_pending",
    Action.QUALIFY: "lead_qualified",
    Action.RECORD_TEST_DRIVE: "test_drive_done",
    Action.BOOK: "booking_created",
    Action.MARK_WON: "retail_done",
    Action.CLOSE: "lead_closed",
    Action.LOSE: "lead_lost",
    Action.DISQUALIFY: "lead_unqualified",
    Action.REOPEN: "lead_reopened",
}


@dataclass(frozen=True)
class TransitionResult:
    lead_id: int
    action: Action
    from_state: LeadState
    to_state: LeadState
    total_attempts: int
    log_id: int


_KEEP: Any = object()  # "leave next_followup_at as it is"


def current_state(session: Session, lead_id: int) -> LeadState:
    """The lead's state as stored (no lock)."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFoundError(f"no lead with id {lead_id}")
    return _state(lead, latest_qualification(session, lead_id))


def log_call_attempt(
    session: Session, lead_id: int, *, by: int, outcome: str | None = None, remarks: str | None = None
) -> TransitionResult:
    """A call was made (connected or not): one more attempt; a new lead becomes contacted."""
    extra = {"call_outcome": outcome.strip()} if outcome and outcome.strip() else {}
    return _transition(
        session, lead_id, Action.LOG_CALL, by=by, remarks=_text(remarks), count_attempt=True, extra=extra
    )


def set_pending(
    session: Session,
    lead_id: int,
    *,
    by: int,
    next_followup_at: datetime | None,
    remarks: str | None,
    reason: str | None = None,
) -> TransitionResult:
    """Follow up later: the follow-up time (aware, in the future) and remarks are required."""
    if next_followup_at is None:
        raise ValidationFailed("a follow-up time is required to set a lead pending")
    _check_future(next_followup_at)
    if _text(remarks) is None:
        raise ValidationFailed("remarks are required to set a lead pending")
    extra: dict[str, Any] = {"nextFollowupAt": next_followup_at.isoformat()}
    if reason is not None:
        chosen = require_reason(session, ReasonKind.PENDING, reason)
        extra |= {"reason": chosen.code, "reason_label": chosen.label, "pendingReason": chosen.label}
    return _transition(
        session,
        lead_id,
        Action.SET_PENDING,
        by=by,
        remarks=_text(remarks),
        count_attempt=True,
        followup=next_followup_at,
        extra=extra,
    )


def qualify(
    session: Session,
    lead_id: int,
    *,
    by: int,
    category: str,
    model: str,
    variant: str | None = None,
    location: str | None = None,
    timeline: str | None = None,
    remarks: str | None = None,
    next_followup_at: datetime | None = None,
) -> TransitionResult:
    """Qualify a lead (or update the qualification of one already qualified): category and model are
    required; writes the lead's `leads_qualification` row (the latest, when legacy data has several).
    An optional follow-up (aware, in the future) is set on the lead and the qualification row."""
    category_, model_ = _text(category), _text(model)
    if category_ is None or model_ is None:
        raise ValidationFailed("qualifying a lead needs a category and a model")
    if next_followup_at is not None:
        _check_future(next_followup_at)
    details: dict[str, Any] = {
        "qualified_category": category_,
        "model_interested": model_,
        "variant": _text(variant),
        "customer_location": _text(location),
        "purchase_timeline": _text(timeline),
        "remarks": _text(remarks),
    }
    extra = {"qualified_category": category_, "model_interested": model_}
    if next_followup_at is not None:
        details["next_followup_at"] = next_followup_at
        extra["nextFollowupAt"] = next_followup_at.isoformat()
    return _transition(
        session,
        lead_id,
        Action.QUALIFY,
        by=by,
        remarks=_text(remarks),
        followup=next_followup_at if next_followup_at is not None else _KEEP,
        qualification=details,
        extra=extra,
    )


def record_test_drive(
    session: Session, lead_id: int, *, by: int, remarks: str | None = None
) -> TransitionResult:
    return _transition(session, lead_id, Action.RECORD_TEST_DRIVE, by=by, remarks=_text(remarks))


def book(session: Session, lead_id: int, *, by: int, remarks: str | None = None) -> TransitionResult:
    return _transition(session, lead_id, Action.BOOK, by=by, remarks=_text(remarks))


def mark_won(session: Session, lead_id: int, *, by: int, remarks: str | None = None) -> TransitionResult:
    return _transition(session, lead_id, Action.MARK_WON, by=by, remarks=_text(remarks))


def close(session: Session, lead_id: int, *, by: int, why: str) -> TransitionResult:
    """End a lead that was neither lost nor won on its own (e.g. the sale happened on another lead)."""
    return _transition(session, lead_id, Action.CLOSE, by=by, remarks=_required(why, "closing a lead"))


def lose(
    session: Session, lead_id: int, *, by: int, reason: str | None, remarks: str | None = None
) -> TransitionResult:
    """A prospect who did not buy: the reason must be an active `lost` reason."""
    return _ended(session, lead_id, Action.LOSE, ReasonKind.LOST, by=by, reason=reason, remarks=remarks)


def disqualify(
    session: Session, lead_id: int, *, by: int, reason: str | None, remarks: str | None = None
) -> TransitionResult:
    """Never a prospect: the reason must be an active `disqualified` reason."""
    return _ended(
        session, lead_id, Action.DISQUALIFY, ReasonKind.DISQUALIFIED, by=by, reason=reason, remarks=remarks
    )


def reopen(session: Session, lead_id: int, *, by: int, why: str) -> TransitionResult:
    """Bring a lost, disqualified or closed lead back to work (as contacted)."""
    return _transition(session, lead_id, Action.REOPEN, by=by, remarks=_required(why, "reopening a lead"))


def _ended(
    session: Session,
    lead_id: int,
    action: Action,
    kind: ReasonKind,
    *,
    by: int,
    reason: str | None,
    remarks: str | None,
) -> TransitionResult:
    chosen = require_reason(session, kind, reason)
    legacy_key = "disqualifyReason" if kind is ReasonKind.DISQUALIFIED else "lostReason"
    return _transition(
        session,
        lead_id,
        action,
        by=by,
        remarks=_text(remarks) or chosen.label,
        followup=None,
        extra={"reason": chosen.code, "reason_label": chosen.label, legacy_key: chosen.label},
    )


def _transition(
    session: Session,
    lead_id: int,
    action: Action,
    *,
    by: int,
    remarks: str | None,
    count_attempt: bool = False,
    followup: datetime | None = _KEEP,
    qualification: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> TransitionResult:
    if session.get(User, by) is None:
        raise NotFoundError(f"no user with id {by}")
    lead = session.execute(
        select(Lead).where(Lead.id == lead_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if lead is None:
        raise NotFoundError(f"no lead with id {lead_id}")
    qual = latest_qualification(session, lead_id)
    from_state = _state(lead, qual)
    to_state = next_state(from_state, action)  # raises TransitionNotAllowed
    columns = legacy_columns(to_state)
    now = utcnow()

    values: dict[str, Any] = {"status": columns.status, "IS_LOST": columns.is_lost, "updated_at": now}
    if columns.is_qualified is not None:
        values["is_qualified"] = columns.is_qualified
    if remarks is not None:
        values["Lead_Remarks"] = remarks
    if to_state in TERMINAL_STATES:
        values["next_followup_at"] = None  # nothing to follow up on an ended lead
    elif followup is not _KEEP:
        values["next_followup_at"] = followup
    if count_attempt:
        values["total_attempts"] = func.coalesce(_LEADS.c.total_attempts, 0) + 1
    attempts = session.execute(
        update(_LEADS).where(_LEADS.c.id == lead_id).values(values).returning(_LEADS.c.total_attempts)
    ).scalar_one()

    flags = {
        "test_drive": columns.test_drive,
        "booked": columns.booked,
        "retailed": columns.retailed,
    }
    flags = {k: v for k, v in flags.items() if v is not None}
    if qualification is not None or flags:
        _write_qualification(
            session,
            lead,
            qual,
            by=by,
            now=now,
            first=from_state not in QUALIFIED_FAMILY,
            values={**(qualification or {}), **flags},
        )

    legacy_action = _LEGACY_ACTION[action]
    if action is Action.QUALIFY and from_state in QUALIFIED_FAMILY:
        legacy_action = "qualification_updated"
    log_id = session.execute(
        insert(_LOGS)
        .values(
            lead_id=lead_id,
            old_status=lead.status,
            new_status=columns.status,
            remarks=remarks,
            attempt_no=attempts if count_attempt else None,
            created_by=by,
            metadata={
                "action": legacy_action,
                "transition": action.value,
                "from_state": from_state.value,
                "to_state": to_state.value,
                **(extra or {}),
            },
            created_at=now,
        )
        .returning(_LOGS.c.id)
    ).scalar_one()
    session.expire(lead)
    return TransitionResult(
        lead_id=lead_id,
        action=action,
        from_state=from_state,
        to_state=to_state,
        total_attempts=int(attempts or 0),
        log_id=log_id,
    )


def latest_qualification(session: Session, lead_id: int) -> LeadQualification | None:
    """The lead's qualification row. Legacy data may hold several (no unique key): the latest counts."""
    return session.execute(
        select(LeadQualification)
        .where(LeadQualification.lead_id == lead_id)
        .order_by(LeadQualification.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _state(lead: Lead, qual: LeadQualification | None) -> LeadState:
    return state_of(
        lead.status,
        is_lost=lead.is_lost,
        is_qualified=lead.is_qualified,
        test_drive=qual.test_drive if qual else None,
        booked=qual.booked if qual else None,
        retailed=qual.retailed if qual else None,
    )


def _write_qualification(
    session: Session,
    lead: Lead,
    qual: LeadQualification | None,
    *,
    by: int,
    now: datetime,
    first: bool,
    values: dict[str, Any],
) -> None:
    # Select-then-insert is safe here: the lead row lock serialises every leadhub writer of this lead.
    if qual is None:
        qual = LeadQualification(lead_id=lead.id, branch_id=lead.branch_id)
        session.add(qual)
    for key, value in values.items():
        setattr(qual, key, value)
    if first and "qualified_category" in values:
        qual.qualified_by = by
        qual.qualified_at = now
    qual.updated_at = now
    session.flush()


def _check_future(when: datetime) -> None:
    if when.tzinfo is None:
        raise ValidationFailed("the follow-up time needs a time zone (e.g. 2026-12-01T11:00+05:30)")
    if when <= utcnow():
        raise ValidationFailed(f"the follow-up time {when.isoformat()} is not in the future")


def _text(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None


def _required(value: str | None, what: str) -> str:
    text = _text(value)
    if text is None:
        raise ValidationFailed(f"{what} needs a reason (why)")
    return text
