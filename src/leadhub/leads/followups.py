"""Follow-up queues in the business's time zone (LEADHUB_TIMEZONE, default Asia/Kolkata).

The legacy app computed "today" in UTC, so between 00:00 and 05:30 IST its "today's follow-ups" showed
yesterday's. Here a business day is midnight to midnight in the business's zone, converted to UTC
bounds for the query.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select

from leadhub.config import get_settings
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


def todays_walk_ins(*, now: datetime | None = None, tz: ZoneInfo | None = None) -> Select[Lead]:
    """Leads with a walk-in visit during today's business day, first visits and repeat visits alike
    (each visit is one walk-in event in the intake inbox): the reception desk's day."""
    start, end = business_day_bounds(business_today(now, tz), tz)
    visits = select(IntakeEvent.lead_id).where(
        IntakeEvent.source == "walk_in",
        IntakeEvent.received_at >= start,
        IntakeEvent.received_at < end,
        IntakeEvent.lead_id.is_not(None),
    )
    return select(Lead).where(Lead.id.in_(visits))
