"""Where each poller got to, and what went wrong last, per channel and scope (a form, an account)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Identity, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from leadhub.db.base import Base
from leadhub.db.types import BigIntPK, JSONType, UTCDateTime


class SyncCheckpoint(Base):
    __tablename__ = "sync_checkpoints"
    __table_args__ = (UniqueConstraint("channel", "scope"),)

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    channel: Mapped[str] = mapped_column(Text)  # knowlarity | meta
    scope: Mapped[str] = mapped_column(Text)  # e.g. "calllog", or a Meta form id
    # Everything strictly before this instant is ingested; never moved past a record that failed.
    cursor: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[Any] = mapped_column(JSONType, nullable=True)  # vendor-specific extras
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)  # shown by `leadhub status` and /readyz
    error_kind: Mapped[str | None] = mapped_column(Text)  # e.g. token_expired, rate_limited, unavailable
