"""Knowlarity's own tables: virtual numbers, calls (one row per call uuid) and callback tasks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Identity, Index, Integer, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from leadhub.db.base import Base
from leadhub.db.types import BigIntPK, JSONType, UTCDateTime


class KnowlarityNumber(Base):
    """A virtual number (E.164) and the branch, and optionally the source or campaign, it stands for."""

    __tablename__ = "knowlarity_numbers"

    number: Mapped[str] = mapped_column(Text, primary_key=True)
    branch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("branches.id"))
    source_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("sources.id"))
    campaign: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.now())


class Call(Base):
    """Every call once, whichever entrance (push or call-log poll) brought it first."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_customer_id_started_at", "customer_id", "started_at"),
        Index("ix_calls_lead_id", "lead_id"),
        Index(  # revision 0017: removing an inbox row checks this reference
            "ix_calls_intake_event_id",
            "intake_event_id",
            postgresql_where=text("intake_event_id IS NOT NULL"),
            sqlite_where=text("intake_event_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    call_uuid: Mapped[str] = mapped_column(Text, unique=True)
    direction: Mapped[str] = mapped_column(Text)  # inbound | outbound
    answered: Mapped[bool] = mapped_column(Boolean)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    agent: Mapped[str | None] = mapped_column(Text)
    virtual_number: Mapped[str | None] = mapped_column(Text)
    number_mapped: Mapped[bool] = mapped_column(Boolean)  # False: the number had no branch mapping
    customer_phone: Mapped[str | None] = mapped_column(Text)  # E.164 when it parsed
    recording_url: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    origin: Mapped[str] = mapped_column(Text)  # push | calllog: which entrance saw it first
    lead_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("leads_master.id"))
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id"))
    intake_event_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("intake_events.id"))
    raw_payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.now())


class CallbackStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class CallbackTask(Base):
    """Call this customer back by `due_at`: opened by a missed call, closed by a later answered one."""

    __tablename__ = "callback_tasks"
    __table_args__ = (
        # At most one open callback per lead: more missed calls do not pile up tasks.
        Index(
            "ux_callback_tasks_open_lead",
            "lead_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index("ix_callback_tasks_customer_id", "customer_id"),
        # An answered call closes its customer's open tasks (revision 0014).
        Index(
            "ix_callback_tasks_open_customer",
            "customer_id",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    lead_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("leads_master.id"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id"))
    call_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("calls.id"))  # the missed call
    missed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(Text)
    closed_by_call_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("calls.id"))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.now())
