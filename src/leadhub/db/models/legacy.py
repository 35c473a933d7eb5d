"""The legacy tables, adopted in place (../shared/legacy/schema.sql).

Names and columns are exactly the legacy ones, quoted upper-case columns included, so the old
application keeps working against the same rows during the switch. Columns leadhub adds to them
(`leads_master.customer_id`, `leads_master.enquired_at`) are nullable and have no default.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from leadhub.db.base import Base
from leadhub.db.types import BigIntPK, JSONType, UTCDateTime


def _pk() -> Mapped[int]:
    return mapped_column(BigIntPK, Identity(always=False), primary_key=True)


def _created() -> Mapped[datetime | None]:
    return mapped_column(UTCDateTime, server_default=func.now())


class User(Base):
    __tablename__ = "users"

    user_id: Mapped[int] = _pk()
    username: Mapped[str] = mapped_column(Text, unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    full_name: Mapped[str | None] = mapped_column(Text)
    phone_number: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    status: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime | None] = _created()
    updated_at: Mapped[datetime | None] = _created()


class Branch(Base):
    __tablename__ = "branches"

    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime | None] = _created()
    updated_at: Mapped[datetime | None] = _created()


class BranchMember(Base):
    __tablename__ = "branch_members"
    __table_args__ = (CheckConstraint("role IN ('TL', 'RM', 'CRE', 'Receptionist')", name="role_check"),)

    id: Mapped[int] = _pk()
    branch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("branches.id"))
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.user_id"))
    contact_name: Mapped[str | None] = mapped_column(Text)
    manager_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("branch_members.id"))
    role: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime | None] = _created()
    updated_at: Mapped[datetime | None] = _created()


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = _pk()
    display_name: Mapped[str] = mapped_column(Text)
    source_type: Mapped[str | None] = mapped_column(Text)
    webhook_secret: Mapped[str | None] = mapped_column(Text)
    field_mapping: Mapped[Any] = mapped_column(JSONType, nullable=True)
    total_leads_count: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    todays_leads_count: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime | None] = _created()


class Lead(Base):
    __tablename__ = "leads_master"
    __table_args__ = (
        Index("idx_leads_master_phone_normalized", "phone_number_normalized"),
        Index("idx_leads_master_customer_id", "customer_id"),
        Index("ix_leads_master_assigned_to_id", "assigned_to", "id"),
        Index("ix_leads_master_branch_id_id", "branch_id", "id"),
        Index(  # revision 0015: only leads that have a follow-up
            "ix_leads_master_followup_set",
            "next_followup_at",
            postgresql_where=text("next_followup_at IS NOT NULL"),
            sqlite_where=text("next_followup_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = _pk()
    full_name: Mapped[str | None] = mapped_column(Text)
    phone_number_normalized: Mapped[str | None] = mapped_column(Text)
    alternate_phone_number: Mapped[str | None] = mapped_column(Text)
    source_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("sources.id"))
    external_lead_id: Mapped[str | None] = mapped_column(Text)
    assigned_to: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.user_id"))
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str | None] = mapped_column(Text)
    next_followup_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    total_attempts: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    is_qualified: Mapped[bool | None] = mapped_column(Boolean, server_default=text("false"))
    is_lost: Mapped[bool | None] = mapped_column("IS_LOST", Boolean)
    lead_remarks: Mapped[str | None] = mapped_column("Lead_Remarks", Text)
    raw_payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    raw_model_interested: Mapped[str | None] = mapped_column(Text)
    raw_customer_location: Mapped[str | None] = mapped_column(Text)
    branch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("branches.id"))
    created_at: Mapped[datetime | None] = _created()
    updated_at: Mapped[datetime | None] = _created()
    # Added by leadhub.
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id"))
    enquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The phone string exactly as the legacy app stored it, kept when the backfill canonicalises it.
    phone_number_legacy: Mapped[str | None] = mapped_column(Text)


class LeadQualification(Base):
    __tablename__ = "leads_qualification"
    # Added by leadhub (revision 0008): the open-lead rule looks up a lead's funnel flags.
    __table_args__ = (Index("ix_leads_qualification_lead_id", "lead_id"),)

    id: Mapped[int] = _pk()
    lead_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("leads_master.id"))
    qualified_category: Mapped[str | None] = mapped_column(Text)
    model_interested: Mapped[str | None] = mapped_column(Text)
    variant: Mapped[str | None] = mapped_column(Text)
    profession: Mapped[str | None] = mapped_column(Text)
    customer_location: Mapped[str | None] = mapped_column(Text)
    purchase_timeline: Mapped[str | None] = mapped_column(Text)
    finance_type: Mapped[str | None] = mapped_column(Text)
    testdrive_date: Mapped[date | None] = mapped_column(Date)
    exchange_vehicle_make: Mapped[str | None] = mapped_column(Text)
    exchange_vehicle_model: Mapped[str | None] = mapped_column(Text)
    exchange_vehicle_year: Mapped[int | None] = mapped_column(Integer)
    lead_category: Mapped[str | None] = mapped_column(Text)
    next_followup_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    remarks: Mapped[str | None] = mapped_column(Text)
    qualified_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.user_id"))
    qualified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_status: Mapped[str | None] = mapped_column(Text, server_default=text("'pending'"))
    reviewed_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.user_id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dms_id: Mapped[str | None] = mapped_column(Text)
    branch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("branches.id"))
    tl_id: Mapped[int | None] = mapped_column(BigInteger)
    rm_id: Mapped[int | None] = mapped_column(BigInteger)
    test_drive: Mapped[bool | None] = mapped_column("TEST_DRIVE", Boolean)
    booked: Mapped[bool | None] = mapped_column("BOOKED", Boolean)
    retailed: Mapped[bool | None] = mapped_column("RETAILED", Boolean)
    updated_at: Mapped[datetime | None] = _created()


class LeadLog(Base):
    __tablename__ = "leads_logs"
    __table_args__ = (Index("ix_leads_logs_lead_id", "lead_id"),)

    id: Mapped[int] = _pk()
    lead_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("leads_master.id"))
    old_status: Mapped[str | None] = mapped_column(Text)
    new_status: Mapped[str | None] = mapped_column(Text)
    remarks: Mapped[str | None] = mapped_column(Text)
    attempt_no: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.user_id"))
    metadata_: Mapped[Any] = mapped_column("metadata", JSONType, nullable=True)
    created_at: Mapped[datetime | None] = _created()


class LeadSourceHistory(Base):
    __tablename__ = "lead_sources_history"
    __table_args__ = (Index("ix_lead_sources_history_lead_id", "lead_id"),)

    id: Mapped[int] = _pk()
    lead_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("leads_master.id"))
    source_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("sources.id"))
    external_id: Mapped[str | None] = mapped_column(Text)
    raw_payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    received_at: Mapped[datetime | None] = _created()
    is_primary: Mapped[bool | None] = mapped_column(Boolean, server_default=text("false"))
