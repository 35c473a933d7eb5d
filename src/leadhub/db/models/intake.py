"""leadhub's intake inbox and channel-to-source mapping."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, Integer, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from leadhub.db.base import Base
from leadhub.db.types import BigIntPK, JSONType, UTCDateTime


class IntakeStatus(StrEnum):
    PENDING = "pending"  # recorded, not processed yet (e.g. waiting for a vendor fetch)
    PROCESSED = "processed"
    FAILED = "failed"  # kept with its reason; `leadhub inbox replay` retries it


class IntakeEvent(Base):
    """Every enquiry any channel delivers, once per (source, external_id), with its raw payload."""

    __tablename__ = "intake_events"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index(
            "ix_intake_events_open",
            "status",
            "received_at",
            postgresql_where=text("status <> 'processed'"),
            sqlite_where=text("status <> 'processed'"),
        ),
        Index(  # revision 0011: the reception desk's day
            "ix_intake_events_walk_in_received_at",
            "received_at",
            postgresql_where=text("source = 'walk_in'"),
            sqlite_where=text("source = 'walk_in'"),
        ),
        Index(  # revision 0017: deleting a customer checks this reference
            "ix_intake_events_customer_id",
            "customer_id",
            postgresql_where=text("customer_id IS NOT NULL"),
            sqlite_where=text("customer_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)  # created | attached
    reason: Mapped[str | None] = mapped_column(Text)
    intake: Mapped[Any] = mapped_column(JSONType, nullable=True)  # the normalised intake, for replay
    raw_payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    lead_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("leads_master.id"))
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SourceChannel(Base):
    """Which legacy `sources` row a channel's leads carry (the legacy table has no unique key)."""

    __tablename__ = "source_channels"

    channel: Mapped[str] = mapped_column(Text, primary_key=True)
    source_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sources.id"))
