"""State of the legacy backfill: runs, the before-images `--undo` restores from, and staging."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Identity, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from leadhub.db.base import Base
from leadhub.db.types import BigIntPK, JSONType, UTCDateTime


class BackfillRun(Base):
    __tablename__ = "backfill_runs"

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    status: Mapped[str] = mapped_column(Text)  # running | finished | undone
    phase: Mapped[str] = mapped_column(Text)  # keys | merge | leads | attributes | done
    cursor: Mapped[str | None] = mapped_column(Text)  # last key done in the current phase (resume point)
    stats: Mapped[Any] = mapped_column(JSONType, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BackfillLeadLog(Base):
    """A lead's values before the backfill first changed it (only the first before-image is kept)."""

    __tablename__ = "backfill_lead_log"

    lead_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger)
    old_customer_id: Mapped[int | None] = mapped_column(BigInteger)


class BackfillLog(Base):
    """Rows the repair merged, detached or rewrote, whole, so `--undo` can put them back."""

    __tablename__ = "backfill_log"
    __table_args__ = (
        Index("ix_backfill_log_run_kind", "run_id", "kind"),
        Index(
            "ix_backfill_log_customer_before",
            "row_id",
            postgresql_where=text("kind = 'customer_before' AND table_name = 'customers'"),
            sqlite_where=text("kind = 'customer_before' AND table_name = 'customers'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(
        Text
    )  # customer_merged | customer_detached | customer_before | reference
    table_name: Mapped[str] = mapped_column(Text)
    row_id: Mapped[int] = mapped_column(BigInteger)
    before: Mapped[Any] = mapped_column(JSONType, nullable=True)
    restored: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class BackfillCustomerKey(Base):
    """Staging for the repair: the canonical key of each customer whose stored phone is not canonical."""

    __tablename__ = "backfill_customer_keys"

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    e164: Mapped[str | None] = mapped_column(Text, index=True)  # NULL: not a valid number
    reason: Mapped[str | None] = mapped_column(Text)


class BackfillCustomerAttrs(Base):
    """Staging for replay-equivalent attributes: per customer, the earliest non-empty values.

    Each `*_key` is "<enquired_at ISO UTC>|<lead id, zero-padded>", so the smaller string is the
    earlier lead and batches can be merged in any order.
    """

    __tablename__ = "backfill_customer_attrs"

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    first_key: Mapped[str] = mapped_column(Text)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    full_name: Mapped[str | None] = mapped_column(Text)
    name_key: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    city_key: Mapped[str | None] = mapped_column(Text)


class BackfillSetAside(Base):
    """An index or foreign key the PostgreSQL leads phase dropped while it writes, until it is back."""

    __tablename__ = "backfill_set_aside"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)  # index | foreign_key
    table_name: Mapped[str] = mapped_column(Text)
    definition: Mapped[str] = mapped_column(Text)  # pg_get_indexdef / pg_get_constraintdef
    run_id: Mapped[int] = mapped_column(BigInteger)
    set_aside_at: Mapped[datetime] = mapped_column(UTCDateTime)
