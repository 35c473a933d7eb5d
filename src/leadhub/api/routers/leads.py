"""Lead intake for walk-ins, website forms and staff entry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse

from leadhub.api.deps import ActorDep, SessionDep, SettingsDep
from leadhub.api.errors import error_response
from leadhub.api.schemas import CustomerOut, ErrorOut, IntakeOut, LeadIn, LeadOut
from leadhub.auth.access import authorize_intake, get_lead
from leadhub.db.models import Customer, Lead
from leadhub.errors import ValidationFailed
from leadhub.leads.intake import Channel, Intake, IntakeOutcome, ingest

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
    result = ingest(session, intake, region=settings.phone_region, policy=settings.lead_policy)
    if result.lead_id is None:
        # Answered, not raised: the failed inbox row must commit with this request so it can be replayed.
        return error_response(
            ValidationFailed(
                f"the enquiry was kept but could not become a lead: {result.reason}", event_id=result.event_id
            )
        )
    if result.status is not IntakeOutcome.CREATED:
        response.status_code = 200
    lead = session.get(Lead, result.lead_id)
    customer = session.get(Customer, result.customer_id)
    assert lead is not None and customer is not None
    return IntakeOut(
        status=result.status,
        event_id=result.event_id,
        lead=LeadOut.model_validate(lead),
        customer=CustomerOut.model_validate(customer),
    )


@router.get(
    "/leads/{lead_id}", response_model=LeadOut, responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}}
)
def read_lead(lead_id: int, actor: ActorDep, session: SessionDep) -> LeadOut:
    """One lead, if the caller may see it; a lead outside the caller's scope answers 404 like a missing one."""
    return LeadOut.model_validate(get_lead(session, actor, lead_id))
