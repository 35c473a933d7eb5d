"""Hand-written legacy rows, as the legacy app and the migration guide's SQL left them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from leadhub.db.models import Customer, Lead, Source

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)

# (phone as stored, full name, minutes after T0 it was created, raw payload)
ROWS: list[tuple[str | None, str | None, int, dict[str, Any] | None]] = [
    (
        "9876543210",
        "Knowlarity Lead +919876543210",
        0,
        {"start_time": "2024-02-28 10:00:00+05:30"},
    ),  # earliest
    ("919876543210", None, 10, None),
    ("09876543210", "Asha Patel", 20, None),  # the first real name, on a later lead
    ("+91 98765 43210", "Asha P.", 30, None),
    ("00919876543210", "", 40, None),
    ("9123456789/9000000001", "Ravi Kumar", 50, {"id": "lg-1", "created_time": "2024-03-01T02:00:00+0000"}),
    ("0091-9123456789", "Ravi K", 60, None),
    ("02223456789", "Mumbai Office", 70, None),  # landline, valid
    ("442083661177", "London Caller", 80, None),  # '+' stripped by legacy code
    ("98765", "Truncated", 90, None),
    ("", "Empty Phone", 100, None),
    (None, "No Phone", 110, None),
    ("98765432101", "Too Many Digits", 120, None),
]


def insert_legacy(session: Session) -> list[int]:
    knowlarity = Source(display_name="Knowlarity", source_type="knowlarity_call")
    walk_in = Source(display_name="Walk-in", source_type="walk_in")
    session.add_all([knowlarity, walk_in])
    session.flush()
    ids = []
    for i, (phone, name, minutes, payload) in enumerate(ROWS):
        lead = Lead(
            full_name=name,
            phone_number_normalized=phone,
            source_id=knowlarity.id if i % 2 == 0 else walk_in.id,
            external_lead_id=f"call-{i}" if i % 2 == 0 else None,
            status="New",
            raw_payload=payload,
            raw_customer_location="Pune" if i == 4 else None,
            created_at=T0 + timedelta(minutes=minutes),
            updated_at=T0 + timedelta(minutes=minutes),
        )
        session.add(lead)
        session.flush()
        ids.append(lead.id)
    session.commit()
    return ids


def guide_backfill(session: Session) -> None:
    """What the migration guide's SQL did: one customer per stored string, linked by that string."""
    leads = session.query(Lead).order_by(Lead.id).all()
    by_phone: dict[str, Customer] = {}
    for lead in leads:
        phone = lead.phone_number_normalized
        if not phone:
            continue
        if phone not in by_phone:
            by_phone[phone] = Customer(phone_number_normalized=phone, full_name=lead.full_name or None,
                                       created_at=lead.created_at, updated_at=lead.updated_at)  # fmt: skip
            session.add(by_phone[phone])
            session.flush()
        lead.customer_id = by_phone[phone].id
    session.commit()
