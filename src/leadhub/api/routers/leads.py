"""Lead intake for walk-ins, website forms and staff entry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime
from sqlalchemy import select

from leadhub.api.deps import ActorDep, PathId, QueryId, SessionDep, SettingsDep
from leadhub.api.errors import error_response
from leadhub.api.schemas import (
    AssignIn,
    AssignOut,
    BulkAssignIn,
    CustomerOut,
    ErrorOut,
    HandoverIn,
    HandoverOut,
    IntakeOut,
    LeadIn,
    LeadOut,
    LeadPage,
    error_responses,
)
from leadhub.auth.access import (
    Actor,
    authorize_handover,
    authorize_intake,
    can_see_lead,
    get_lead,
    lead_scope,
)
from leadhub.auth.permissions import Permission
from leadhub.db.models import Customer, Lead
from leadhub.errors import NotFoundError, ValidationFailed
from leadhub.leads.assignment import assign_leads, hand_to_rm
from leadhub.leads.intake import Channel, Intake, IntakeOutcome, ingest
from leadhub.leads.queries import MAX_PAGE, LeadFilters, list_leads

router = APIRouter(prefix="/api", tags=["leads"])


@router.post(
    "/leads",
    response_model=IntakeOut,
    status_code=201,
    responses={
        200: {"model": IntakeOut},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)
def create_lead(
    body: LeadIn,
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> IntakeOut | JSONResponse:
    """Record an enquiry: find or create the customer by phone, then create a lead or attach it to
    the customer's open lead at that branch. 201 for a new lead, 200 when attached or repeated.
    Needs `leads.create`, or `walkins.create` for a walk-in at one of the caller's branches."""
    authorize_intake(actor, source=body.source.value, branch_id=body.branch_id)
    if body.rm_user_id is not None:
        authorize_handover(actor)  # the intake above already held the desk to its own branches
    intake = Intake(
        source=Channel(body.source.value),
        phone=body.phone,
        external_id=body.external_id or idempotency_key,
        name=body.name,
        city=body.city,
        email=body.email,
        branch_id=body.branch_id,
        occurred_at=body.occurred_at,
        raw_payload=body.model_dump(mode="json"),
    )
    result = ingest(session, intake, region=settings.phone_region, policy=settings.lead_policy,
                    namespace=_id_namespace(actor))  # fmt: skip
    if result.lead_id is None:
        # Answered, not raised: the failed inbox row must commit with this request so it can be replayed.
        return error_response(
            ValidationFailed(
                f"the enquiry was kept but could not become a lead: {result.reason}", event_id=result.event_id
            )
        )
    if result.status is not IntakeOutcome.CREATED:
        response.status_code = 200
    if body.rm_user_id is not None:
        hand_to_rm(session, result.lead_id, rm_user_id=body.rm_user_id, by_user=actor.user_id,
                   why=f"{body.source.value.replace('_', '-').capitalize()} handed to an RM")  # fmt: skip
    if not can_see_lead(session, actor, result.lead_id):
        # Attached to (or a repeat of) a lead outside the caller's scope: recorded, not shown.
        return IntakeOut(status=result.status, event_id=result.event_id, lead=None, customer=None)
    lead = session.get(Lead, result.lead_id)
    customer = session.get(Customer, result.customer_id)
    assert lead is not None and customer is not None
    return IntakeOut(
        status=result.status,
        event_id=result.event_id,
        lead=LeadOut.model_validate(lead),
        customer=CustomerOut.model_validate(customer),
    )


def _id_namespace(actor: Actor) -> str:
    """Whose ids `external_id` and `Idempotency-Key` are: each API key, each user and the admin key
    has its own, so two integrations that both send id "123" make two enquiries, not one."""
    if actor.via == "api_key":
        return f"apikey:{actor.api_key_name}"
    return "admin" if actor.via == "admin_key" else f"user:{actor.user_id}"


@router.get(
    "/leads/{lead_id}", response_model=LeadOut, responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}}
)
def read_lead(lead_id: PathId, actor: ActorDep, session: SessionDep) -> LeadOut:
    """One lead, if the caller may see it; a lead outside the caller's scope answers 404 like a missing one."""
    return LeadOut.model_validate(get_lead(session, actor, lead_id))


_ERRORS = error_responses(401, 403, 404, 422)


@router.get("/leads", response_model=LeadPage, responses=_ERRORS)
def browse_leads(
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
    branch_id: QueryId = None,
    source_id: QueryId = None,
    assigned_to: QueryId = None,
    unassigned: bool = False,
    customer_id: QueryId = None,
    status: Annotated[str | None, Query(max_length=100, description="The legacy status, any case")] = None,
    enquired_from: AwareDatetime | None = None,
    enquired_to: AwareDatetime | None = None,
    q: Annotated[
        str | None, Query(max_length=100, description="A phone in any format, or part of a name")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> LeadPage:
    """The leads the caller may see, newest first, filtered; `next_cursor` pages through all of them."""
    filters = LeadFilters(branch_id=branch_id, source_id=source_id, assigned_to=assigned_to, unassigned=unassigned,
                          customer_id=customer_id, status=status, enquired_from=enquired_from,
                          enquired_to=enquired_to, q=q)  # fmt: skip
    page = list_leads(
        session, lead_scope(actor), filters, cursor=cursor, limit=limit, region=settings.phone_region
    )
    return LeadPage(items=[LeadOut.model_validate(lead) for lead in page.items], next_cursor=page.next_cursor)


@router.post("/leads/{lead_id}/assign", response_model=AssignOut, responses=_ERRORS)
def assign_lead(lead_id: PathId, body: AssignIn, actor: ActorDep, session: SessionDep) -> AssignOut:
    """Give a lead to a person (`leads.assign`; the lead must be in the caller's scope)."""
    return _assign(session, actor, [lead_id], body)


@router.post("/leads/{lead_id}/rm", response_model=HandoverOut, responses=_ERRORS)
def hand_lead_to_rm(lead_id: PathId, body: HandoverIn, actor: ActorDep, session: SessionDep) -> HandoverOut:
    """Hand a lead to an RM of its branch: `leads.assign`, or `walkins.create` for a lead at one of
    the caller's branches (the walk-in desk). The lead must be in the caller's scope (else 404)."""
    authorize_handover(actor)  # before the look-up, as every action: a missing permission is 403
    authorize_handover(actor, branch_id=get_lead(session, actor, lead_id).branch_id)
    done = hand_to_rm(session, lead_id, rm_user_id=body.user_id, by_user=actor.user_id, why=body.why)
    return HandoverOut(lead_id=done.lead_id, rm_user_id=done.rm_user_id, rm_member_id=done.rm_member_id,
                       assigned=done.assigned)  # fmt: skip


@router.post("/leads/assign", response_model=AssignOut, responses=_ERRORS)
def bulk_assign(body: BulkAssignIn, actor: ActorDep, session: SessionDep) -> AssignOut:
    """Reassign many leads at once (`leads.assign`); all or none: one lead outside the caller's scope
    answers 404 and nothing changes."""
    return _assign(session, actor, body.lead_ids, body)


def _assign(session: SessionDep, actor: ActorDep, lead_ids: list[int], body: AssignIn) -> AssignOut:
    actor.require(Permission.LEADS_ASSIGN)
    wanted = sorted(set(lead_ids))
    visible = set(session.execute(select(Lead.id).where(Lead.id.in_(wanted), lead_scope(actor))).scalars())
    hidden = [i for i in wanted if i not in visible]
    if hidden:
        raise NotFoundError(f"lead(s) not found: {', '.join(map(str, hidden))}")
    done = assign_leads(session, wanted, to_user=body.user_id, by_user=actor.user_id, why=body.why)
    changed = [a.lead_id for a in done]
    return AssignOut(assigned=changed, unchanged=[i for i in wanted if i not in changed])
