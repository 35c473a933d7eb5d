from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from leadhub.customers.journey import customer_journey, search_customers
from leadhub.db.models import Branch, Customer, Lead, LeadLog
from leadhub.integrations.knowlarity.calls import ingest_call
from leadhub.integrations.knowlarity.payloads import CallRecord, Direction, Origin
from leadhub.leads.intake import Channel, Intake, ingest

T0 = datetime(2026, 11, 2, 4, 30, tzinfo=UTC)


def _branches(session: Session) -> tuple[int, int]:
    a, b = Branch(name="Pune Baner", city="Pune"), Branch(name="Nashik Road", city="Nashik")
    session.add_all([a, b])
    session.flush()
    return a.id, b.id


def _story(session: Session) -> tuple[int, int, int]:
    """Asha enquires on the website at Pune, calls (missed, then answered), walks in at Nashik."""
    pune, nashik = _branches(session)
    web = ingest(session, Intake(source=Channel.WEBSITE, phone="098765 43210", name="Asha Patel",
                                 branch_id=pune, occurred_at=T0, external_id="web-1"))  # fmt: skip
    for i, answered in enumerate((False, True)):
        ingest_call(
            session,
            CallRecord(call_uuid=f"call-{i}", customer_phone="+91 98765 43210", virtual_number=None,
                       direction=Direction.INBOUND, answered=answered, duration_seconds=30 if answered else 0,
                       agent="agent-7", recording_url=None, started_at=T0 + timedelta(hours=1 + i),
                       ended_at=None, origin=Origin.PUSH, raw={"i": i}),
        )  # fmt: skip
    walk = ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=nashik,
                                  occurred_at=T0 + timedelta(days=1)))  # fmt: skip
    assert web.customer_id == walk.customer_id and web.lead_id != walk.lead_id
    assert web.customer_id is not None and web.lead_id is not None and walk.lead_id is not None
    return web.customer_id, web.lead_id, walk.lead_id


def test_the_journey_holds_every_lead_and_what_happened_in_time_order(session: Session) -> None:
    customer_id, web_lead, walk_lead = _story(session)
    journey = customer_journey(session, customer_id)
    assert journey is not None
    assert journey.customer.full_name == "Asha Patel"
    assert [lead.id for lead in journey.leads] == [web_lead, walk_lead]
    assert [(lead.branch, lead.source) for lead in journey.leads] == [("Pune Baner", "Website"),
                                                                       ("Nashik Road", "Walk-in")]  # fmt: skip
    kinds = [e.kind for e in journey.events]
    # The calls attached to the open web lead: each a call, a source touch and a log row (those two
    # stamped when they were written, today; the script's enquiries are dated earlier).
    assert kinds.count("enquiry") == 2 and kinds.count("call") == 2 and kinds.count("source_touch") == 2
    assert kinds.count("activity") == 2
    dated = [(e.kind, e.lead_id) for e in journey.events if e.kind in ("enquiry", "call")]
    assert dated == [("enquiry", web_lead), ("call", web_lead), ("call", web_lead), ("enquiry", walk_lead)]
    times = [e.at for e in journey.events if e.at is not None]
    assert times == sorted(times)
    calls = [e for e in journey.events if e.kind == "call"]
    assert [c.summary.split()[0] for c in calls] == ["Missed", "Answered"]
    assert all(c.lead_id == web_lead for c in calls)


def test_a_scope_hides_leads_and_a_customer_with_none_visible_is_not_found(session: Session) -> None:
    customer_id, _, walk_lead = _story(session)
    nashik_only = customer_journey(session, customer_id, lead_scope=Lead.id == walk_lead)
    assert nashik_only is not None and [lead.id for lead in nashik_only.leads] == [walk_lead]
    assert all(e.lead_id == walk_lead for e in nashik_only.events)
    assert customer_journey(session, customer_id, lead_scope=Lead.id == -1) is None
    assert customer_journey(session, 999_999) is None


def test_status_changes_read_as_from_to(session: Session) -> None:
    customer_id, web_lead, _ = _story(session)
    session.add(LeadLog(lead_id=web_lead, old_status="New", new_status="Pending", remarks="call back",
                        created_at=T0 + timedelta(hours=3)))  # fmt: skip
    session.flush()
    journey = customer_journey(session, customer_id)
    assert journey is not None
    assert any(e.kind == "activity" and e.summary == "New → Pending" for e in journey.events)


@pytest.mark.parametrize("query", ["+91 98765 43210", "09876543210", "919876543210", "98765-43210"])
def test_a_phone_in_any_format_finds_the_one_customer(session: Session, query: str) -> None:
    customer_id, _, _ = _story(session)
    found = search_customers(session, query)
    assert [c.id for c in found.customers] == [customer_id] and not found.truncated


def test_names_match_anywhere_case_insensitively_and_a_long_list_says_it_was_cut(session: Session) -> None:
    for i in range(5):
        session.add(Customer(phone_number_normalized=f"+9190000000{i:02d}", full_name=f"Ravi Kumar {i}",
                             origin="intake"))  # fmt: skip
    session.add(Customer(phone_number_normalized="+919000000099", full_name="50% Off_Lead", origin="intake"))
    session.flush()
    found = search_customers(session, "kumar", limit=3)
    assert len(found.customers) == 3 and found.truncated
    assert len(search_customers(session, "KUMAR").customers) == 5
    # LIKE wildcards in the query are matched literally
    assert [c.full_name for c in search_customers(session, "50%").customers] == ["50% Off_Lead"]
    assert search_customers(session, "_").customers[0].full_name == "50% Off_Lead"
    with pytest.raises(ValueError):
        search_customers(session, "   ")
