"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from leadhub.leads.intake import IntakeOutcome


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
    branch_id: int | None = Field(default=None, ge=1)
    external_id: str | None = Field(
        default=None,
        max_length=200,
        description="Your id for this enquiry; a repeat with the same id is a no-op",
    )
    occurred_at: datetime | None = Field(default=None, description="When the enquiry happened (default: now)")


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


class IntakeOut(BaseModel):
    status: IntakeOutcome
    event_id: int
    lead: LeadOut
    customer: CustomerOut


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody
