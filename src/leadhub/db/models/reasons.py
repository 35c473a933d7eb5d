"""Reason master data for pending, lost and disqualified leads (the legacy app kept pending and
unqualified reasons as admin-managed tables, ../shared/legacy/legacy-app.md §1.12; the adopted schema
has neither, so leadhub owns one table for all three kinds)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Identity, Integer, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from leadhub.db.base import Base
from leadhub.db.types import BigIntPK, UTCDateTime


class LeadReason(Base):
    __tablename__ = "lead_reasons"
    __table_args__ = (
        UniqueConstraint("kind", "code"),
        CheckConstraint("kind IN ('pending', 'lost', 'disqualified')", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)  # pending | lost | disqualified
    code: Mapped[str] = mapped_column(Text)  # stable key written to leads_logs.metadata
    label: Mapped[str] = mapped_column(Text)  # what staff see
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    display_order: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
