from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadhub.config import LeadPolicy
from leadhub.db.models import (
    Branch,
    Customer,
    IntakeEvent,
    Lead,
    LeadLog,
    LeadQualification,
    LeadSourceHistory,
    Source,
)
from leadhub.leads.intake import Channel, Intake, IntakeOutcome, ingest, replay


def _count(session: Session, model: type) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def _branch(session: Session, name: str = "Pune Baner") -> int:
    branch = Branch(name=name, city="Pune")
    session.add(branch)
    session.flush()
    return branch.id


def test_an_enquiry_becomes_a_lead_linked_to_its_customer(session: Session) -> None:
    branch = _branch(session)
    when = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
    result = ingest(
        session,
        Intake(
            source=Channel.WALK_IN,
            phone="098765 43210",
            name="Asha Patel",
            city="Pune",
            branch_id=branch,
            occurred_at=when,
            raw_payload={"form": "walk-in desk"},
        ),
    )
    assert result.status is IntakeOutcome.CREATED and result.customer_created
    lead = session.get(Lead, result.lead_id)
    assert lead is not None
    assert lead.customer_id == result.customer_id
    assert lead.phone_number_normalized == "+919876543210"
    assert lead.full_name == "Asha Patel"
    assert lead.branch_id == branch
    assert lead.status == "New" and lead.is_lost is None and lead.total_attempts == 0
    assert lead.enquired_at == when
    assert lead.raw_payload == {"form": "walk-in desk"}
    source = session.get(Source, lead.source_id)
    assert source is not None and (source.display_name, source.source_type) == ("Walk-in", "walk_in")
    event = session.get(IntakeEvent, result.event_id)
    assert event is not None and event.status == "processed" and event.lead_id == lead.id


def test_the_same_external_id_again_returns_the_first_result_and_writes_nothing(session: Session) -> None:
    intake = Intake(source=Channel.KNOWLARITY, phone="+919876543210", external_id="call-1")
    first = ingest(session, intake)
    counts = [_count(session, m) for m in (Lead, Customer, IntakeEvent, LeadLog, LeadSourceHistory)]
    again = ingest(session, Intake(source=Channel.KNOWLARITY, phone="9123456789", external_id="call-1"))
    assert again.status is IntakeOutcome.DUPLICATE
    assert (again.event_id, again.lead_id, again.customer_id) == (
        first.event_id,
        first.lead_id,
        first.customer_id,
    )
    assert [_count(session, m) for m in (Lead, Customer, IntakeEvent, LeadLog, LeadSourceHistory)] == counts


def test_external_ids_are_scoped_by_source(session: Session) -> None:
    a = ingest(session, Intake(source=Channel.KNOWLARITY, phone="9876543210", external_id="42"))
    b = ingest(session, Intake(source=Channel.META, phone="9876543210", external_id="42"))
    assert b.status is not IntakeOutcome.DUPLICATE and a.event_id != b.event_id


def test_invalid_phone_is_kept_as_failed_with_its_reason_and_payload(session: Session) -> None:
    result = ingest(
        session,
        Intake(source=Channel.WEBSITE, phone="98765", name="Asha", raw_payload={"phone": "98765"}),
    )
    assert result.status is IntakeOutcome.FAILED and result.lead_id is None
    assert result.reason is not None and "short" in result.reason
    event = session.get(IntakeEvent, result.event_id)
    assert event is not None
    assert event.status == "failed" and event.reason == result.reason
    assert event.raw_payload == {"phone": "98765"} and event.intake["phone"] == "98765"
    assert _count(session, Lead) == 0 and _count(session, Customer) == 0


def test_unknown_branch_is_kept_as_failed(session: Session) -> None:
    result = ingest(session, Intake(source=Channel.STAFF, phone="9876543210", branch_id=999))
    assert result.status is IntakeOutcome.FAILED and result.reason == "unknown branch id 999"


def test_a_failed_event_replays_with_a_corrected_phone(session: Session) -> None:
    failed = ingest(session, Intake(source=Channel.WEBSITE, phone="98765", name="Asha Patel"))
    [replayed] = replay(session, event_ids=[failed.event_id], phone="9876543210")
    assert replayed.status is IntakeOutcome.CREATED and replayed.event_id == failed.event_id
    event = session.get(IntakeEvent, failed.event_id)
    assert event is not None and event.status == "processed" and event.attempts == 2
    assert replay(session) == []  # nothing left to replay


def test_repeat_enquiry_at_the_same_branch_attaches_to_the_open_lead(session: Session) -> None:
    branch = _branch(session)
    first = ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=branch))
    again = ingest(session, Intake(source=Channel.KNOWLARITY, phone="+91 98765 43210", branch_id=branch))
    assert again.status is IntakeOutcome.ATTACHED and again.lead_id == first.lead_id
    assert _count(session, Lead) == 1
    history = session.execute(select(LeadSourceHistory)).scalars().all()
    assert [h.lead_id for h in history] == [first.lead_id]  # another source: one touch recorded
    log = session.execute(select(LeadLog)).scalar_one()
    assert log.metadata_["action"] == "repeat_enquiry"


def test_same_source_repeat_attaches_without_a_source_touch(session: Session) -> None:
    branch = _branch(session)
    ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=branch))
    again = ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=branch))
    assert again.status is IntakeOutcome.ATTACHED
    assert _count(session, LeadSourceHistory) == 0


def test_another_branch_gets_its_own_lead_for_the_same_customer(session: Session) -> None:
    pune, mumbai = _branch(session, "Pune"), _branch(session, "Mumbai")
    a = ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=pune))
    b = ingest(session, Intake(source=Channel.WALK_IN, phone="09876543210", branch_id=mumbai))
    assert b.status is IntakeOutcome.CREATED and b.lead_id != a.lead_id
    assert a.customer_id == b.customer_id and _count(session, Customer) == 1


@pytest.mark.parametrize(
    ("status", "is_lost"), [("Won", None), ("Lost - Price Concern", True), ("New", True)]
)
def test_a_closed_lead_is_not_reused(session: Session, status: str, is_lost: bool | None) -> None:
    branch = _branch(session)
    first = ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=branch))
    lead = session.get(Lead, first.lead_id)
    assert lead is not None
    lead.status, lead.is_lost = status, is_lost
    session.flush()
    again = ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=branch))
    assert again.status is IntakeOutcome.CREATED and again.lead_id != first.lead_id


def test_a_lead_won_through_the_retailed_flag_is_not_reused(session: Session) -> None:
    """The legacy CRE screen set RETAILED without changing the status: the lead is won, so closed."""
    branch = _branch(session)
    first = ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=branch))
    assert first.lead_id is not None
    lead = session.get_one(Lead, first.lead_id)
    lead.status, lead.is_qualified = "Qualified", True
    session.add(LeadQualification(lead_id=first.lead_id, retailed=True))
    session.flush()
    again = ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=branch))
    assert again.status is IntakeOutcome.CREATED and again.lead_id != first.lead_id


def test_without_a_branch_the_most_recent_open_lead_is_used(session: Session) -> None:
    pune, mumbai = _branch(session, "Pune"), _branch(session, "Mumbai")
    ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=pune,
                           occurred_at=datetime(2026, 1, 1, tzinfo=UTC)))  # fmt: skip
    recent = ingest(session, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=mumbai,
                                    occurred_at=datetime(2026, 6, 1, tzinfo=UTC)))  # fmt: skip
    unknown = ingest(session, Intake(source=Channel.META, phone="9876543210", external_id="lg-1"))
    assert unknown.status is IntakeOutcome.ATTACHED and unknown.lead_id == recent.lead_id


def test_without_a_branch_and_no_open_lead_a_lead_needing_a_branch_is_created(session: Session) -> None:
    result = ingest(session, Intake(source=Channel.META, phone="9876543210", external_id="lg-1"))
    lead = session.get(Lead, result.lead_id)
    assert result.status is IntakeOutcome.CREATED and lead is not None and lead.branch_id is None


def test_new_lead_policy_makes_one_lead_per_enquiry(session: Session) -> None:
    branch = _branch(session)
    for _ in range(3):
        result = ingest(
            session,
            Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=branch),
            policy=LeadPolicy.NEW_LEAD,
        )
        assert result.status is IntakeOutcome.CREATED
    assert _count(session, Lead) == 3 and _count(session, Customer) == 1


def test_two_numbers_in_one_field_keep_the_second_as_alternate(session: Session) -> None:
    result = ingest(session, Intake(source=Channel.IMPORT, phone="9876543210/9123456789"))
    lead = session.get(Lead, result.lead_id)
    assert lead is not None
    assert lead.phone_number_normalized == "+919876543210"
    assert lead.alternate_phone_number == "9123456789"


def test_legacy_sources_row_is_reused_not_duplicated(session: Session) -> None:
    session.add_all([Source(display_name="Meta", source_type="meta_form") for _ in range(2)])
    session.flush()
    lowest = session.execute(select(func.min(Source.id))).scalar_one()
    result = ingest(session, Intake(source=Channel.META, phone="9876543210", external_id="lg-9"))
    lead = session.get(Lead, result.lead_id)
    assert lead is not None and lead.source_id == lowest
    assert _count(session, Source) == 2


def test_replay_skips_events_recorded_without_an_intake(session: Session) -> None:
    """A vendor event recorded before it could be read (intake None) is not replayable yet."""
    from leadhub.integrations import inbox

    event_id = inbox.record_event(
        session, source="meta", external_id="lg-77", intake=None, raw_payload={"x": 1}
    )
    assert event_id is not None
    assert (
        session.execute(select(IntakeEvent.id).where(IntakeEvent.intake.is_(None))).scalar_one() == event_id
    )
    assert replay(session) == []
