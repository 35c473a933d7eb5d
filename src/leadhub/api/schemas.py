"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from leadhub.leads.intake import IntakeOutcome

MAX_ID = 2**63 - 1  # bigint


class ApiChannel(StrEnum):
    WALK_IN = "walk_in"
    WEBSITE = "website"
    STAFF = "staff"


class LeadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: ApiChannel = Field(description="Where the enquiry came from")
    phone: str = Field(min_length=1, max_length=64, description="In any format; canonicalised to E.164")
    name: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    branch_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    external_id: str | None = Field(
        default=None,
        max_length=200,
        description="Your id for this enquiry; a repeat with the same id from the same caller (API key or "
        "user) is a no-op; another caller's id of the same value is another enquiry",
    )
    occurred_at: AwareDatetime | None = Field(
        default=None, description="When the enquiry happened, with its offset (default: now)"
    )
    rm_user_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="Hand the lead to this RM of the branch (the walk-in desk's hand-off); "
        "needs `leads.assign` or `walkins.create`",
    )


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    phone_number_normalized: str
    full_name: str | None
    email: str | None
    city: str | None
    created_at: datetime | None


class LeadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int | None
    full_name: str | None
    phone_number_normalized: str | None
    source_id: int | None
    branch_id: int | None
    status: str | None
    external_lead_id: str | None
    enquired_at: datetime | None
    created_at: datetime | None
    assigned_to: int | None = None
    assigned_at: datetime | None = None
    next_followup_at: datetime | None = None
    total_attempts: int | None = None
    is_qualified: bool | None = None
    is_lost: bool | None = None


class IntakeOut(BaseModel):
    status: IntakeOutcome
    event_id: int
    lead: LeadOut | None = Field(
        description="The lead, when the caller may see it (an enquiry attached to someone else's lead "
        "is recorded, but the lead and customer stay out of the answer)"
    )
    customer: CustomerOut | None


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses=` for the error answers an endpoint gives (all in the one error shape)."""
    return {code: {"model": ErrorOut} for code in codes}


class LeadPage(BaseModel):
    items: list[LeadOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class AssignIn(BaseModel):
    user_id: int = Field(ge=1, le=MAX_ID, description="Who takes the lead(s)")
    why: str | None = Field(default=None, max_length=500, description="Kept in each lead's activity")


class HandoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=1, le=MAX_ID, description="An active RM of the lead's branch")
    why: str | None = Field(default=None, max_length=500, description="Kept in the lead's activity")


class HandoverOut(BaseModel):
    lead_id: int
    rm_user_id: int
    rm_member_id: int = Field(description="The RM's branch_members row, stored in leads_qualification.rm_id")
    assigned: bool = Field(description="The lead had no owner and is now the RM's")


class BulkAssignIn(AssignIn):
    lead_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=500)


class AssignOut(BaseModel):
    assigned: list[int] = Field(description="Leads that changed hands")
    unchanged: list[int] = Field(description="Leads that were already the user's")


class CustomerSearchOut(BaseModel):
    items: list[CustomerOut]
    truncated: bool = Field(description="More matched than the limit: narrow the search")
    enquiries: list[LeadOut] | None = Field(
        default=None, description="With a phone search by reception: every enquiry of the one customer"
    )


class JourneyLeadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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


class JourneyEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime | None
    lead_id: int
    kind: str
    summary: str
    detail: dict[str, Any]


class JourneyOut(BaseModel):
    customer: CustomerOut
    leads: list[JourneyLeadOut]
    events: list[JourneyEventOut]


class BranchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    city: str | None
    is_active: bool | None


class SourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    display_name: str
    source_type: str | None
