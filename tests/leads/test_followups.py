"""Today's and overdue follow-ups are computed in the business's time zone, not in UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from leadhub.config import Settings
from leadhub.db.models import Lead
from leadhub.db.session import session_scope
from leadhub.leads.followups import business_day_bounds, business_today, overdue_followups, today_followups


@pytest.mark.parametrize(
    ("zone", "day", "start", "end"),
    [
        ("Asia/Kolkata", date(2026, 11, 29), datetime(2026, 11, 28, 18, 30), datetime(2026, 11, 29, 18, 30)),
        ("UTC", date(2026, 11, 29), datetime(2026, 11, 29), datetime(2026, 11, 30)),
        # a day with a DST change is 23 hours long
        ("Europe/London", date(2026, 3, 29), datetime(2026, 3, 29, 0, 0), datetime(2026, 3, 29, 23, 0)),
    ],
)
def test_business_day_bounds_in_utc(zone: str, day: date, start: datetime, end: datetime) -> None:
    assert business_day_bounds(day, ZoneInfo(zone)) == (start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))


def test_the_default_business_zone_is_india(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADHUB_TIMEZONE", raising=False)
    # 00:30 IST on the 29th is still the 28th in UTC
    assert business_today(datetime(2026, 11, 28, 19, 0, tzinfo=UTC)) == date(2026, 11, 29)


def test_an_unknown_time_zone_setting_is_refused_clearly() -> None:
    with pytest.raises(ValidationError, match="not an IANA time zone name"):
        Settings(timezone="India/Mumbai")


def test_follow_ups_across_midnight_ist(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADHUB_TIMEZONE", "Asia/Kolkata")
    at = {
        "yesterday_late": datetime(2026, 11, 28, 18, 29, tzinfo=UTC),  # 23:59 IST on the 28th
        "today_early": datetime(2026, 11, 28, 18, 31, tzinfo=UTC),  # 00:01 IST on the 29th
        "today_late": datetime(2026, 11, 29, 18, 29, tzinfo=UTC),  # 23:59 IST on the 29th
        "tomorrow": datetime(2026, 11, 29, 18, 30, tzinfo=UTC),  # 00:00 IST on the 30th
        "lost_today": datetime(2026, 11, 29, 5, 0, tzinfo=UTC),
    }
    with session_scope(factory) as s:
        ids = {}
        for name, when in at.items():
            lead = Lead(full_name=name, status="Pending", next_followup_at=when)
            if name == "lost_today":
                lead.status, lead.is_lost = "Lost", True
            s.add(lead)
            s.flush()
            ids[name] = lead.id
    now = datetime(2026, 11, 28, 19, 0, tzinfo=UTC)  # 00:30 IST on the 29th; UTC still says the 28th
    with factory() as s:
        today = [lead.full_name for lead in s.execute(today_followups(now=now)).scalars()]
        overdue = [lead.full_name for lead in s.execute(overdue_followups(now=now)).scalars()]
    assert today == ["today_early", "today_late"]
    assert overdue == ["yesterday_late"]
