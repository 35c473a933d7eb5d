"""Who works a lead: rules, rotation, stickiness, manual and bulk assignment.

Every intake path that creates a lead assigns it in the same transaction (SQLite: here; PostgreSQL:
`leadhub_after_create`, revision 0009, the same rule, compared by tests/leads/test_server_side.py):

1. The first active rule (by priority, then id) whose channel and branch match (None matches any)
   and whose days and hours, in the rule's own time zone, include now.
2. A sticky rule gives the lead to the person who owns the customer's most recent assigned lead,
   when that person is active.
3. Otherwise the rotation: the rule's row is locked, the active member with the fewest leads
   (weighted: the lowest (count + 1) / weight) gets it, and its counter is incremented in the same
   statement that SQL makes atomic. 100 concurrent intakes over 3 people give 33/33/34.
4. No rule, or nobody active: the lead stays unassigned (the unassigned queue).

Every assignment writes one `leads_logs` row with the reason (`metadata.action = "assigned"`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from leadhub.db.models import (
    AssignmentMember,
    AssignmentRule,
    BranchMember,
    Lead,
    LeadLog,
    LeadQualification,
    User,
)
from leadhub.db.types import utcnow
from leadhub.errors import ValidationFailed
from leadhub.leads.workflow import latest_qualification

MODES = ("round_robin", "weighted")


@dataclass(frozen=True, slots=True)
class Assignment:
    lead_id: int
    user_id: int
    reason: str  # sticky | round_robin | weighted | manual
    rule_id: int | None = None


def rule_is_active(
    days: str, active_from: time | None, active_to: time | None, timezone: str, at: datetime
) -> bool:
    """Whether a rule applies at `at`: the local time in [from, to) on one of `days` (ISO weekdays,
    1 = Monday). A window ending before it starts crosses midnight (22:00-06:00) and belongs to the day
    it starts: Monday's night shift runs to Tuesday 06:00, and Monday 02:00 is Sunday's shift."""
    local = at.astimezone(ZoneInfo(timezone))
    now = local.time().replace(tzinfo=None)
    day = local.isoweekday()
    if active_from is None or active_to is None:
        return str(day) in days
    if active_from <= active_to:
        return str(day) in days and active_from <= now < active_to
    if now >= active_from:
        return str(day) in days  # the evening part of tonight's shift
    # the small hours belong to the shift that started yesterday evening
    return now < active_to and str(day - 1 if day > 1 else 7) in days


def assign_new_lead(
    session: Session, *, lead_id: int, customer_id: int, channel: str, branch_id: int | None
) -> Assignment | None:
    """Assign a lead the intake has just created (see the module's rule). Flushes, never commits."""
    now = utcnow()
    rules = session.execute(
        select(AssignmentRule)
        .where(
            AssignmentRule.is_active.is_(True),
            (AssignmentRule.channel.is_(None)) | (AssignmentRule.channel == channel),
            (AssignmentRule.branch_id.is_(None)) | (AssignmentRule.branch_id == branch_id),
        )
        .order_by(AssignmentRule.priority, AssignmentRule.id)
    ).scalars()
    rule = next(
        (r for r in rules if rule_is_active(r.active_days, r.active_from, r.active_to, r.timezone, now)), None
    )
    if rule is None:
        return None
    user_id = _sticky_owner(session, customer_id=customer_id, lead_id=lead_id) if rule.sticky else None
    reason = "sticky"
    if user_id is None:
        session.execute(select(AssignmentRule.id).where(AssignmentRule.id == rule.id).with_for_update())
        order = case(
            (AssignmentRule.mode == "weighted",
             (AssignmentMember.assigned_count + 1) * 1.0 / AssignmentMember.weight),
            else_=AssignmentMember.assigned_count * 1.0,
        )  # fmt: skip
        member = session.execute(
            select(AssignmentMember.id, AssignmentMember.user_id)
            .join(User, User.user_id == AssignmentMember.user_id)
            .join(AssignmentRule, AssignmentRule.id == AssignmentMember.rule_id)
            .where(
                AssignmentMember.rule_id == rule.id,
                AssignmentMember.is_active.is_(True),
                func.coalesce(User.status, True).is_(True),
            )
            .order_by(order, AssignmentMember.id)
            .limit(1)
        ).first()
        if member is None:
            return None
        session.execute(
            update(AssignmentMember)
            .where(AssignmentMember.id == member.id)
            .values(assigned_count=AssignmentMember.assigned_count + 1, last_assigned_at=now)
        )
        user_id, reason = member.user_id, rule.mode
    _set_owner(session, lead_id, user_id, now=now, remarks=f"Assigned ({reason.replace('_', ' ')}, rule {rule.name})",
               metadata={"action": "assigned", "to": user_id, "reason": reason, "rule_id": rule.id})  # fmt: skip
    return Assignment(lead_id=lead_id, user_id=user_id, reason=reason, rule_id=rule.id)


def assign_leads(
    session: Session, lead_ids: Sequence[int], *, to_user: int, by_user: int | None, why: str | None = None
) -> list[Assignment]:
    """Manual assignment and bulk reassignment by a manager (access is checked by the caller).
    Leads already with `to_user` are left alone; each change is one log row with who and why."""
    user = session.get(User, to_user)
    if user is None or user.status is False:
        raise ValidationFailed(
            f"user {to_user} does not exist or is disabled; leads can only go to active users"
        )
    now = utcnow()
    leads = session.execute(
        select(Lead.id, Lead.assigned_to, Lead.status)
        .where(Lead.id.in_(lead_ids))
        .order_by(Lead.id)
        .with_for_update()
    ).all()
    missing = set(lead_ids) - {row.id for row in leads}
    if missing:
        raise ValidationFailed(f"no such lead(s): {', '.join(map(str, sorted(missing)))}")
    done = []
    for row in leads:
        if row.assigned_to == to_user:
            continue
        _set_owner(session, row.id, to_user, now=now, status=row.status, by=by_user,
                   remarks=why or "Assigned by a manager",
                   metadata={"action": "assigned", "to": to_user, "from": row.assigned_to, "reason": "manual"})  # fmt: skip
        done.append(Assignment(lead_id=row.id, user_id=to_user, reason="manual"))
    return done


def add_member(session: Session, *, rule_id: int, user_id: int, weight: int = 1) -> AssignmentMember:
    """Join (or rejoin) a rotation. The counter starts at, or is raised to, the rotation's lowest, so
    the person takes their turn instead of receiving every lead until they have caught up."""
    if weight < 1:
        raise ValidationFailed("weight must be 1 or more")
    if session.get(AssignmentRule, rule_id) is None:
        raise ValidationFailed(f"no assignment rule {rule_id}")
    if session.get(User, user_id) is None:
        raise ValidationFailed(f"no user {user_id}")
    # under the rule's lock, like the rotation itself, so the lowest count cannot move meanwhile
    session.execute(select(AssignmentRule.id).where(AssignmentRule.id == rule_id).with_for_update())
    lowest = session.execute(
        select(func.min(AssignmentMember.assigned_count)).where(
            AssignmentMember.rule_id == rule_id, AssignmentMember.is_active.is_(True)
        )
    ).scalar_one()
    member = session.execute(
        select(AssignmentMember).where(
            AssignmentMember.rule_id == rule_id, AssignmentMember.user_id == user_id
        )
    ).scalar_one_or_none()
    if member is None:
        member = AssignmentMember(rule_id=rule_id, user_id=user_id, weight=weight, assigned_count=lowest or 0)
        session.add(member)
    else:  # back from leave: never behind the rotation, or they would take every lead until caught up
        member.is_active, member.weight = True, weight
        member.assigned_count = max(member.assigned_count, lowest or 0)
    session.flush()
    return member


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationFailed(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Kolkata)"
        ) from error
    return name


def _sticky_owner(session: Session, *, customer_id: int, lead_id: int) -> int | None:
    return session.execute(
        select(Lead.assigned_to)
        .join(User, User.user_id == Lead.assigned_to)
        .where(
            Lead.customer_id == customer_id, Lead.id != lead_id, func.coalesce(User.status, True).is_(True)
        )
        .order_by(func.coalesce(Lead.assigned_at, Lead.created_at).desc(), Lead.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _set_owner(
    session: Session,
    lead_id: int,
    user_id: int,
    *,
    now: datetime,
    remarks: str,
    metadata: dict[str, object],
    status: str | None = "New",
    by: int | None = None,
) -> None:
    session.execute(update(Lead).where(Lead.id == lead_id).values(assigned_to=user_id, assigned_at=now))
    session.add(LeadLog(lead_id=lead_id, old_status=status, new_status=status, remarks=remarks, created_by=by,
                        metadata_=metadata, created_at=now))  # fmt: skip
    session.flush()


@dataclass(frozen=True)
class Handover:
    lead_id: int
    rm_user_id: int
    rm_member_id: int  # the RM's branch_members row, which the legacy app stores in leads_qualification.rm_id
    assigned: bool  # the lead had no owner and now belongs to the RM


def hand_to_rm(
    session: Session, lead_id: int, *, rm_user_id: int, by_user: int | None, why: str | None = None
) -> Handover:
    """Hand a lead to a relationship manager of its branch, as the legacy walk-in desk does: the latest
    qualification row's `rm_id` names the RM's `branch_members` row (created when the lead has none),
    and an unassigned lead is assigned to the RM. One activity row records who handed it and why.
    Access is checked by the caller."""
    lead = session.execute(select(Lead).where(Lead.id == lead_id).with_for_update()).scalar_one_or_none()
    if lead is None:
        raise ValidationFailed(f"no lead {lead_id}")
    if lead.branch_id is None:
        raise ValidationFailed("the lead has no branch yet; set its branch before handing it to an RM")
    member = session.execute(
        select(BranchMember.id)
        .join(User, User.user_id == BranchMember.user_id)
        .where(
            BranchMember.user_id == rm_user_id,
            BranchMember.branch_id == lead.branch_id,
            BranchMember.role == "RM",
            BranchMember.is_active.is_(True),
            User.status.is_not(False),
        )
        .order_by(BranchMember.id)
        .limit(1)
    ).scalar_one_or_none()
    if member is None:
        raise ValidationFailed(
            f"user {rm_user_id} is not an active RM of branch {lead.branch_id}; hand the lead to an RM there"
        )
    now = utcnow()
    qual = latest_qualification(session, lead_id)
    if qual is not None and qual.rm_id == member:
        return Handover(lead_id=lead_id, rm_user_id=rm_user_id, rm_member_id=member, assigned=False)
    if qual is None:
        qual = LeadQualification(lead_id=lead_id, branch_id=lead.branch_id)
        session.add(qual)
    previous = qual.rm_id
    qual.rm_id = member
    qual.updated_at = now
    assigned = lead.assigned_to is None
    if assigned:
        lead.assigned_to = rm_user_id
        lead.assigned_at = now
    lead.updated_at = now
    session.add(
        LeadLog(
            lead_id=lead_id,
            old_status=lead.status,
            new_status=lead.status,
            created_by=by_user,
            remarks=why or "Handed to an RM",
            created_at=now,
            metadata_={
                "action": "handed_to_rm",
                "rm_user_id": rm_user_id,
                "rm_member_id": member,
                "previous_rm_member_id": previous,
                "assigned": assigned,
            },
        )
    )
    session.flush()
    return Handover(lead_id=lead_id, rm_user_id=rm_user_id, rm_member_id=member, assigned=assigned)
