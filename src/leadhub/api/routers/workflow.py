"""The work on a lead: calls, follow-ups, qualification, status changes, notes; work queues."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import or_, select

from leadhub.api.deps import ActorDep, PathId, SessionDep, SettingsDep
from leadhub.api.schemas import LeadOut, LeadPage, error_responses
from leadhub.auth.access import Actor, get_lead, lead_scope, works_on
from leadhub.auth.permissions import Permission
from leadhub.db.models import Lead, LeadLog
from leadhub.db.types import utcnow
from leadhub.errors import PermissionDenied
from leadhub.leads import workflow
from leadhub.leads.followups import overdue_followups, today_followups, todays_walk_ins
from leadhub.leads.lifecycle import LeadState
from leadhub.leads.queries import MAX_PAGE, page
from leadhub.leads.reasons import ReasonKind, list_reasons
from leadhub.leads.status import open_lead_clause, state_clause

router = APIRouter(prefix="/api", tags=["workflow"])
_ERRORS = error_responses(401, 403, 404, 409, 422)


class TransitionOut(BaseModel):
    lead_id: int
    action: str
    from_state: LeadState
    to_state: LeadState
    total_attempts: int
    log_id: int


class CallIn(BaseModel):
    outcome: str | None = Field(default=None, max_length=100, description="e.g. RNR, Call Disconnected")
    remarks: str | None = Field(default=None, max_length=2000)


class FollowUpIn(BaseModel):
    at: AwareDatetime = Field(description="When to call back, with its offset (e.g. +05:30)")
    remarks: str = Field(min_length=1, max_length=2000)
    reason: str | None = Field(default=None, max_length=100, description="A pending reason code")


class QualifyIn(BaseModel):
    category: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1, max_length=100)
    variant: str | None = Field(default=None, max_length=100)
    location: str | None = Field(default=None, max_length=200)
    timeline: str | None = Field(default=None, max_length=100)
    remarks: str | None = Field(default=None, max_length=2000)
    next_followup_at: AwareDatetime | None = None


class StatusAction(StrEnum):
    TEST_DRIVE = "test_drive"
    BOOK = "book"
    WON = "won"
    CLOSE = "close"
    LOSE = "lose"
    DISQUALIFY = "disqualify"
    REOPEN = "reopen"


class StatusIn(BaseModel):
    action: StatusAction
    reason: str | None = Field(default=None, max_length=100, description="Required to lose or disqualify")
    remarks: str | None = Field(default=None, max_length=2000, description="Required to close or reopen")


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ActivityOut(BaseModel):
    id: int
    at: datetime | None
    by: int | None
    old_status: str | None
    new_status: str | None
    remarks: str | None
    metadata: dict[str, Any] | None


class ReasonOut(BaseModel):
    kind: str
    code: str
    label: str


def _worker(actor: Actor) -> int:
    actor.require(Permission.LEADS_UPDATE)
    if actor.user_id is None:
        raise PermissionDenied("work on a lead is recorded against a person: log in as a user")
    return actor.user_id


def _out(result: workflow.TransitionResult) -> TransitionOut:
    return TransitionOut(lead_id=result.lead_id, action=result.action.value, from_state=result.from_state,
                         to_state=result.to_state, total_attempts=result.total_attempts, log_id=result.log_id)  # fmt: skip


@router.post("/leads/{lead_id}/calls", response_model=TransitionOut, responses=_ERRORS)
def log_call(lead_id: PathId, body: CallIn, actor: ActorDep, session: SessionDep) -> TransitionOut:
    """A call attempt (counts as an attempt; a new lead becomes contacted)."""
    by = _worker(actor)
    get_lead(session, actor, lead_id)
    return _out(
        workflow.log_call_attempt(session, lead_id, by=by, outcome=body.outcome, remarks=body.remarks)
    )


@router.post("/leads/{lead_id}/follow-ups", response_model=TransitionOut, responses=_ERRORS)
def follow_up(lead_id: PathId, body: FollowUpIn, actor: ActorDep, session: SessionDep) -> TransitionOut:
    """Pending with a call-back time (required, in the future) and remarks."""
    by = _worker(actor)
    get_lead(session, actor, lead_id)
    return _out(workflow.set_pending(session, lead_id, by=by, next_followup_at=body.at, remarks=body.remarks,
                                     reason=body.reason))  # fmt: skip


@router.post("/leads/{lead_id}/qualify", response_model=TransitionOut, responses=_ERRORS)
def qualify(lead_id: PathId, body: QualifyIn, actor: ActorDep, session: SessionDep) -> TransitionOut:
    """Qualify: category and model required; writes the lead's qualification."""
    by = _worker(actor)
    get_lead(session, actor, lead_id)
    return _out(workflow.qualify(session, lead_id, by=by, category=body.category, model=body.model,
                                 variant=body.variant, location=body.location, timeline=body.timeline,
                                 remarks=body.remarks, next_followup_at=body.next_followup_at))  # fmt: skip


@router.post("/leads/{lead_id}/status", response_model=TransitionOut, responses=_ERRORS)
def change_status(lead_id: PathId, body: StatusIn, actor: ActorDep, session: SessionDep) -> TransitionOut:
    """Move a lead on: test drive, book, won, close, lose (reason), disqualify (reason), reopen.
    A move the lead's state does not allow answers 409 naming the state and what is allowed."""
    by = _worker(actor)
    get_lead(session, actor, lead_id)
    act: dict[StatusAction, Callable[[], workflow.TransitionResult]] = {
        StatusAction.TEST_DRIVE: lambda: workflow.record_test_drive(session, lead_id, by=by, remarks=body.remarks),
        StatusAction.BOOK: lambda: workflow.book(session, lead_id, by=by, remarks=body.remarks),
        StatusAction.WON: lambda: workflow.mark_won(session, lead_id, by=by, remarks=body.remarks),
        StatusAction.CLOSE: lambda: workflow.close(session, lead_id, by=by, why=body.remarks or ""),
        StatusAction.LOSE: lambda: workflow.lose(session, lead_id, by=by, reason=body.reason, remarks=body.remarks),
        StatusAction.DISQUALIFY: lambda: workflow.disqualify(session, lead_id, by=by, reason=body.reason,
                                                             remarks=body.remarks),
        StatusAction.REOPEN: lambda: workflow.reopen(session, lead_id, by=by, why=body.remarks or ""),
    }  # fmt: skip
    return _out(act[body.action]())


@router.post("/leads/{lead_id}/notes", response_model=ActivityOut, status_code=201, responses=_ERRORS)
def add_note(lead_id: PathId, body: NoteIn, actor: ActorDep, session: SessionDep) -> ActivityOut:
    """A note in the lead's activity; the state does not change."""
    by = _worker(actor)
    lead = get_lead(session, actor, lead_id)
    note = LeadLog(lead_id=lead.id, old_status=lead.status, new_status=lead.status, remarks=body.text, created_by=by,
                   metadata_={"action": "note"}, created_at=utcnow())  # fmt: skip
    session.add(note)
    session.flush()
    return _activity(note)


@router.get("/leads/{lead_id}/activity", response_model=list[ActivityOut], responses=_ERRORS)
def activity(lead_id: PathId, actor: ActorDep, session: SessionDep) -> list[ActivityOut]:
    """The lead's activity, oldest first (every row: who, when, from, to, why)."""
    get_lead(session, actor, lead_id)
    rows = session.execute(select(LeadLog).where(LeadLog.lead_id == lead_id).order_by(LeadLog.id)).scalars()
    return [_activity(row) for row in rows]


@router.get("/reasons", response_model=list[ReasonOut], responses=_ERRORS)
def reasons(actor: ActorDep, session: SessionDep, kind: ReasonKind | None = None) -> list[ReasonOut]:
    """The reasons staff choose from (pending, lost, disqualified)."""
    del actor
    return [ReasonOut(kind=r.kind, code=r.code, label=r.label) for r in list_reasons(session, kind=kind)]


class Queue(StrEnum):
    MINE = "mine"  # open leads assigned to me, or handed to me as an RM
    TEAM = "team"  # open leads in my scope that someone works: a team lead's view of the team
    WALKINS_TODAY = "walkins_today"  # leads with a walk-in visit today (first or repeat): reception's day
    FOLLOWUPS_TODAY = "followups_today"
    FOLLOWUPS_OVERDUE = "followups_overdue"
    UNASSIGNED = "unassigned"  # open leads with no owner
    # The CRE tabs, by lifecycle state (leads/status.state_clause), within the caller's scope.
    FRESH = "fresh"
    CALLED = "called"
    PENDING = "pending"
    QUALIFIED = "qualified"
    WON = "won"
    LOST = "lost"
    CLOSED = "closed"


_TABS: dict[Queue, tuple[LeadState, ...]] = {
    Queue.FRESH: (LeadState.NEW,),
    Queue.CALLED: (LeadState.CONTACTED,),
    Queue.PENDING: (LeadState.PENDING,),
    Queue.QUALIFIED: (LeadState.QUALIFIED, LeadState.TEST_DRIVE, LeadState.BOOKED),
    Queue.WON: (LeadState.WON,),
    Queue.LOST: (LeadState.LOST, LeadState.DISQUALIFIED),
    Queue.CLOSED: (LeadState.CLOSED,),
}


@router.get("/queues/{queue}", response_model=LeadPage, responses=_ERRORS)
def queue(
    queue: Queue,
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> LeadPage:
    """A work queue within the caller's scope, newest first: `mine` (assigned to me, or handed to me
    as an RM), `team` (open leads in my scope that someone works), `unassigned`, `followups_today` and
    `followups_overdue`, `walkins_today` (first and repeat walk-in visits today) — "today" is the
    business day in LEADHUB_TIMEZONE, not UTC — and the CRE tabs by state: `fresh`, `called`,
    `pending`, `qualified` (with test drive and booked), `won`, `lost` (with disqualified), `closed`."""
    tz = ZoneInfo(settings.timezone)
    if queue is Queue.FOLLOWUPS_TODAY:
        query = today_followups(tz=tz)
    elif queue is Queue.FOLLOWUPS_OVERDUE:
        query = overdue_followups(tz=tz)
    elif queue is Queue.WALKINS_TODAY:
        query = todays_walk_ins(session, tz=tz)
    elif queue in _TABS:
        query = select(Lead).where(or_(*(state_clause(state) for state in _TABS[queue])))
    else:
        query = select(Lead).where(open_lead_clause())
        if queue is Queue.MINE:
            query = query.where(works_on(actor))
        elif queue is Queue.TEAM:
            query = query.where(Lead.assigned_to.is_not(None))
        else:
            query = query.where(Lead.assigned_to.is_(None))
    found = page(session, query.where(lead_scope(actor)), cursor=cursor, limit=limit)
    return LeadPage(items=[LeadOut.model_validate(r) for r in found.items], next_cursor=found.next_cursor)


def _activity(row: LeadLog) -> ActivityOut:
    return ActivityOut(id=row.id, at=row.created_at, by=row.created_by, old_status=row.old_status,
                       new_status=row.new_status, remarks=row.remarks, metadata=row.metadata_)  # fmt: skip
