"""Assignment rules: which leads go to whom, in rotation, when."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import BigInteger, Boolean, ForeignKey, Identity, Index, Integer, Text, Time, func, text
from sqlalchemy.orm import Mapped, mapped_column

from leadhub.db.base import Base
from leadhub.db.types import BigIntPK, UTCDateTime


class AssignmentRule(Base):
    """Leads of a channel and/or branch (None = any), during active days and hours in the rule's time
    zone, are rotated among the rule's members. The first matching rule by (priority, id) applies."""

    __tablename__ = "assignment_rules"

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(Text)
    branch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("branches.id"))
    mode: Mapped[str] = mapped_column(Text, server_default=text("'round_robin'"))  # round_robin | weighted
    active_days: Mapped[str] = mapped_column(Text, server_default=text("'1234567'"))  # ISO weekdays
    active_from: Mapped[time | None] = mapped_column(Time)  # None with active_to None: all day
    active_to: Mapped[time | None] = mapped_column(Time)  # earlier than active_from: crosses midnight
    timezone: Mapped[str] = mapped_column(Text, server_default=text("'Asia/Kolkata'"))
    sticky: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    priority: Mapped[int] = mapped_column(Integer, server_default=text("100"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=func.now())


class AssignmentMember(Base):
    """A person in a rule's rotation. `assigned_count` is the rotation's counter, only ever changed by
    an atomic UPDATE under the rule's row lock; `weight` 2 receives twice the leads of weight 1."""

    __tablename__ = "assignment_members"
    __table_args__ = (Index("ux_assignment_members_rule_user", "rule_id", "user_id", unique=True),)

    id: Mapped[int] = mapped_column(BigIntPK, Identity(always=False), primary_key=True)
    rule_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("assignment_rules.id"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.user_id"))
    weight: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    assigned_count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    last_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
