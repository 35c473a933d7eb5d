"""Follow-up queues in the business's time zone (LEADHUB_TIMEZONE, default Asia/Kolkata).

The legacy app computed "today" in UTC, so between 00:00 and 05:30 IST its "today's follow-ups" showed
yesterday's. Here a business day is midnight to midnight in the business's zone, converted to UTC
bounds for the query.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Select, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from leadhub.config import get_settings
from leadhub.db.dialect import dialect_name
from leadhub.db.models import IntakeEvent, Lead
from leadhub.db.types import utcnow
from leadhub.leads.status import open_lead_clause


def business_tz() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


def business_today(now: datetime | None = None, tz: ZoneInfo | None = None) -> date:
    return (now or utcnow()).astimezone(tz or business_tz()).date()


def business_day_bounds(day: date, tz: ZoneInfo | None = None) -> tuple[datetime, datetime]:
    """[start, end) of `day` in the business's zone, as aware UTC datetimes (a DST day is 23 or 25 h)."""
    zone = tz or business_tz()
    start = datetime.combine(day, time(), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def today_followups(*, now: datetime | None = None, tz: ZoneInfo | None = None) -> Select[Lead]:
    """Open leads with a follow-up due during today's business day (earlier today included)."""
    start, end = business_day_bounds(business_today(now, tz), tz)
    return (
        select(Lead)
        .where(Lead.next_followup_at >= start, Lead.next_followup_at < end, open_lead_clause())
        .order_by(Lead.next_followup_at, Lead.id)
    )


def overdue_followups(*, now: datetime | None = None, tz: ZoneInfo | None = None) -> Select[Lead]:
    """Open leads whose follow-up fell on an earlier business day (disjoint from today's queue)."""
    start, _ = business_day_bounds(business_today(now, tz), tz)
    return (
        select(Lead)
        .where(Lead.next_followup_at < start, open_lead_clause())
        .order_by(Lead.next_followup_at, Lead.id)
    )


def todays_walk_ins(
    session: Session, *, now: datetime | None = None, tz: ZoneInfo | None = None
) -> Select[Lead]:
    """Leads with a walk-in visit during today's business day, first visits and repeat visits alike
    (each visit is one walk-in event in the intake inbox): the reception desk's day.

    On PostgreSQL the day's visits (hundreds, a few thousand at most) are read first, through the
    partial index of revision 0011, and the leads then by primary key from one array parameter: given
    the visits as a subquery, PostgreSQL walks a branch's leads newest first hoping to meet 50 of them
    early, and reads the whole branch when it does not."""
    start, end = business_day_bounds(business_today(now, tz), tz)
    visits = select(IntakeEvent.lead_id).where(
        IntakeEvent.source == "walk_in",
        IntakeEvent.received_at >= start,
        IntakeEvent.received_at < end,
        IntakeEvent.lead_id.is_not(None),
    )
    if dialect_name(session) != "postgresql":
        return select(Lead).where(Lead.id.in_(visits))
    ids = sorted({lead_id for lead_id in session.execute(visits).scalars() if lead_id is not None})
    return select(Lead).where(Lead.id == any_(bindparam("walk_in_visits", ids, type_=ARRAY(BigInteger))))
