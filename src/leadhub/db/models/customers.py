"""One customer per canonical (E.164) phone number."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Identity, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from leadhub.db.base import Base
from leadhub.db.types import BigIntPK, UTCDateTime


class Customer(Base):
    __tablename__ = "customers"
    # SQLite: ids never reused (revision 0016), so --undo can restore a merged customer with its id.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    phone_number_normalized: Mapped[str] = mapped_column(Text, unique=True)
    full_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.now())
    # Who made the row: "intake" (live, since the switch), "backfill", or NULL (made before leadhub,
    # e.g. by the migration guide's SQL). The backfill recomputes attributes only of rows no person or
    # live enquiry has shaped.
    origin: Mapped[str | None] = mapped_column(Text)
