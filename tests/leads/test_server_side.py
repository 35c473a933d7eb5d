"""The server-side intake (PL/pgSQL, revision 0006) against the Python path it repeats.

The same scripted sequence of enquiries and calls runs once through the Python path and once through
the functions, on the same empty tables with identities restarted; every row both write is compared,
with timestamps the database stamps at write time ("now") set aside. Any drift between the two
definitions of the intake rule fails here.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.orm import Session, sessionmaker

from leadhub.config import LeadPolicy
from leadhub.customers.names import clean_name
from leadhub.db.models import (
    AssignmentRule,
    Branch,
    Customer,
    KnowlarityNumber,
    Lead,
    LeadQualification,
    Source,
    User,
)
from leadhub.integrations.knowlarity.calls import ingest_call
from leadhub.integrations.knowlarity.payloads import CallRecord, Direction, Origin
from leadhub.leads.assignment import add_member
from leadhub.leads.intake import Channel, Intake, IntakeError, IntakeOutcome, ingest, ingest_many, replay
from leadhub.leads.status import is_open
from tests.conftest import _tables, requires_postgres

pytestmark = requires_postgres

T0 = datetime(2026, 11, 1, 4, 30, tzinfo=UTC)
# Every column stamped with the time of the write, which the two runs cannot share.
STAMPED = {"created_at", "updated_at", "received_at", "processed_at", "closed_at"}
COMPARED = ["customers", "leads_master", "intake_events", "lead_sources_history", "leads_logs", "calls",
            "callback_tasks", "sources", "source_channels", "assignment_members"]  # fmt: skip

PHONES = ["98765 43210", "+91 98765-43210", "919876543210", "09876543210", "p:+918888777766",
          "8888777766", "+1 415 555 2671", "12345", "", None, "98765 43210 / 9123456789", "91234 56789",
          "7000000001", "+917000000002", "0091 7000000003"]  # fmt: skip
NAMES = [None, "", "Asha Patel", "  asha   patel ", "Knowlarity Lead +9198", "N/A", "Ravi Kumar", "Caller",
         "98765 43210", "Meera", "Test Lead", "Lead"]  # fmt: skip
LEGACY_STATUSES = ["New", "new", "Called", "Pending", "Qualified", "Won", "won", "Closed", "Lost",
                   "lost - price", "LOST", "Disqualified", "Unqualified", "Booked-Retail", None,
                   "closed_due_to_sale_elsewhere", "Follow up", "Test Drive"]  # fmt: skip


def _seed(session: Session) -> dict[str, Any]:
    branches = [Branch(name=f"Branch {i}", city="Pune") for i in range(3)]
    session.add_all(branches)
    session.flush()
    campaign = Source(display_name="Diwali campaign", source_type="knowlarity_call", created_at=T0)
    session.add(campaign)
    session.flush()
    session.add_all([
        KnowlarityNumber(number="+918069000001", branch_id=branches[0].id),
        KnowlarityNumber(number="+918069000002", branch_id=branches[1].id, source_id=campaign.id,
                         campaign="diwali"),
        KnowlarityNumber(number="+918069000003", branch_id=None, campaign="unplaced"),
    ])  # fmt: skip
    # Who works the leads: a weighted rotation for branch 0, a sticky round robin for calls, and a
    # rotation for everything else whose only active member is later disabled mid-script.
    people = [User(username=f"cre{i}", role="CRE", status=True) for i in range(4)]
    session.add_all(people)
    session.flush()
    rules = [AssignmentRule(name="branch 0", branch_id=branches[0].id, mode="weighted", priority=10),
             AssignmentRule(name="calls", channel="knowlarity", priority=20),
             AssignmentRule(name="rest", priority=90, sticky=False)]  # fmt: skip
    session.add_all(rules)
    session.flush()
    for rule, members in zip(rules, [[(0, 1), (1, 3)], [(1, 1), (2, 1), (3, 1)], [(3, 1)]], strict=True):
        for who, weight in members:
            add_member(session, rule_id=rule.id, user_id=people[who].user_id, weight=weight)
    # Customers made before leadhub: placeholder and blank attributes, and leads in every legacy status.
    rng = random.Random(7)
    for i, status in enumerate(LEGACY_STATUSES):
        customer = Customer(phone_number_normalized=f"+91700000{i:04d}",
                            full_name=rng.choice([None, "Knowlarity Lead", "Old Name", " "]),
                            city=rng.choice([None, "", "Mumbai"]), email=None, origin="backfill",
                            created_at=T0, updated_at=T0)  # fmt: skip
        session.add(customer)
        session.flush()
        session.add(Lead(customer_id=customer.id, phone_number_normalized=customer.phone_number_normalized,
                         status=status, is_lost=rng.choice([None, False, True]) if i % 3 == 0 else None,
                         branch_id=branches[i % 3].id, enquired_at=T0 - timedelta(days=i),
                         created_at=T0, updated_at=T0, total_attempts=0, is_qualified=False))  # fmt: skip
    session.flush()
    return {"branches": [b.id for b in branches], "people": [p.user_id for p in people]}


def _script(session: Session, seed: dict[str, Any], *, server_side: bool) -> None:
    rng = random.Random(2026)
    branches = [*seed["branches"], None, 999_999]  # 999999: an unknown branch, kept as failed
    for step in range(220):
        policy = LeadPolicy.NEW_LEAD if step % 17 == 0 else LeadPolicy.ATTACH
        phone = rng.choice([*PHONES, *(f"+91700000{i:04d}" for i in range(len(LEGACY_STATUSES)))])
        when = T0 + timedelta(minutes=step)
        kind = rng.random()
        if kind < 0.45:
            source = rng.choice([Channel.WALK_IN, Channel.WEBSITE, Channel.META, Channel.STAFF])
            external = rng.choice([None, f"ext-{rng.randrange(60)}"])
            intake = Intake(source=source, phone=phone, external_id=external, name=rng.choice(NAMES),
                            city=rng.choice([None, "", " Pune ", "Nashik"]),
                            email=rng.choice([None, "A@Example.com", "bad email", ""]),
                            branch_id=rng.choice(branches), occurred_at=rng.choice([when, when, None]),
                            raw_payload={"step": step}, extra={"form": "f1"} if step % 2 else {})  # fmt: skip
            ingest(session, intake, policy=policy, server_side=server_side,
                   claim_pending=source is Channel.META)  # fmt: skip
        elif kind < 0.9:
            answered = rng.random() < 0.5
            call = CallRecord(
                call_uuid=f"call-{rng.randrange(90)}", customer_phone=phone or "",
                virtual_number=rng.choice(["+918069000001", "08069000002", "+918069000003", "+918069009999",
                                           None, "junk"]),
                direction=rng.choice(list(Direction)), answered=answered,
                duration_seconds=rng.choice([None, 0, 42]) if answered else 0,
                agent=rng.choice([None, "agent-7"]), recording_url=rng.choice([None, "https://r.example/x.mp3"]),
                started_at=rng.choice([when, None]), ended_at=rng.choice([when + timedelta(seconds=42), None]),
                origin=rng.choice(list(Origin)), raw={"callid": step},
            )  # fmt: skip
            ingest_call(
                session, call, policy=policy, callback_sla=timedelta(minutes=30), server_side=server_side
            )
        else:
            batch = [Intake(source=Channel.META, phone=rng.choice(PHONES), external_id=f"meta-{rng.randrange(40)}",
                            name=rng.choice(NAMES), branch_id=rng.choice(branches[:3]), occurred_at=when,
                            raw_payload={"batch": step, "i": i}) for i in range(rng.randrange(1, 6))]  # fmt: skip
            results = ingest_many(session, batch, policy=policy, claim_pending=True, server_side=server_side)
            assert not any(isinstance(r, IntakeError) for r in results)
        if step == 120:
            session.execute(update(User).where(User.user_id == seed["people"][3]).values(status=False))
        if step % 50 == 49:
            replay(session, phone="+919999988888", limit=3, server_side=server_side)
    session.flush()


def _snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    snap: dict[str, list[tuple[Any, ...]]] = {}
    for table in COMPARED:
        rows = session.execute(text(f"SELECT * FROM {table} ORDER BY 1")).mappings().all()
        snap[table] = [tuple((k, _now_or(v)) for k, v in row.items() if k not in STAMPED) for row in rows]
    return snap


def _now_or(value: Any) -> Any:
    """A time derived from "now" (a call without a start time, an enquiry without one) differs between
    the runs by seconds; the script's own times are weeks earlier."""
    if isinstance(value, datetime) and abs(value - datetime.now(UTC)) < timedelta(hours=1):
        return "now"
    if isinstance(value, str) and value.startswith("auto:"):
        return "auto:<uuid>"  # the inbox key of an enquiry without an id is random on both paths
    return value


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_tables(engine))} RESTART IDENTITY CASCADE"))


def test_the_functions_write_exactly_what_the_python_path_writes(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    snapshots = {}
    for server_side in (False, True):
        _reset(engine)
        with factory() as session:
            seed = _seed(session)
            _script(session, seed, server_side=server_side)
            session.commit()
            snapshots[server_side] = _snapshot(session)
    python, server = snapshots[False], snapshots[True]
    # The script reaches every outcome, or the comparison would prove little.
    outcomes = {dict(row)["outcome"] for row in python["intake_events"]} | {
        dict(row)["status"] for row in python["intake_events"]
    }
    assert {"created", "attached", "failed"} <= outcomes
    assert any(dict(row)["status"] == "done" for row in python["callback_tasks"])
    assert python["lead_sources_history"] and python["leads_logs"]
    reasons = {dict(row)["metadata"].get("reason") for row in python["leads_logs"] if dict(row)["metadata"]}
    assert {"weighted", "round_robin", "sticky"} <= reasons
    for table in COMPARED:
        assert len(server[table]) == len(python[table]), table
        for mine, theirs in zip(server[table], python[table], strict=True):
            assert mine == theirs, f"{table}: server-side {mine} != python {theirs}"


def test_enquired_at_defaults_to_the_time_of_the_write_on_both_paths(session: Session) -> None:
    for server_side in (False, True):
        result = ingest(session, Intake(source=Channel.WEBSITE, phone="98765 43210"),
                        policy=LeadPolicy.NEW_LEAD, server_side=server_side)  # fmt: skip
        lead = session.get(Lead, result.lead_id)
        assert lead is not None and lead.enquired_at is not None
        assert abs(lead.enquired_at - datetime.now(UTC)) < timedelta(minutes=5)


@pytest.mark.parametrize("name", [*NAMES, "\tRavi\u00a0 Kumar\n", "Walk-in lead 3", "WALK IN LEAD", "---",
                                  "fb lead", "Leadership", "\u0967\u0968\u0969 \u096a\u096b", "\u3000Meera\u2003", "?", "(+91) 98765-43210", "null", "Nil"])  # fmt: skip
def test_the_stored_name_rule_matches_clean_name(session: Session, name: str | None) -> None:
    stored = session.execute(text("SELECT leadhub_clean_name(:n)"), {"n": name}).scalar_one()
    assert stored == clean_name(name)


@pytest.mark.parametrize("status", [*LEGACY_STATUSES, "lost_to_competitor", "Lostish", " Won ", "Booked",
                                    "test drive", "Unqualified - budget", "Disqualified: spam", "Fresh"])  # fmt: skip
def test_the_open_lead_rule_matches_is_open(session: Session, status: str | None) -> None:
    for lost, qualified, retailed in itertools.product(
        [None, False, True], [None, False, True], [None, True]
    ):
        lead = Lead(status=status, is_lost=lost, is_qualified=qualified, total_attempts=0)
        session.add(lead)
        session.flush()
        if retailed is not None:
            # an older row that says the opposite: the latest row is the one that counts
            session.add(LeadQualification(lead_id=lead.id, retailed=not retailed))
            session.add(LeadQualification(lead_id=lead.id, retailed=retailed))
            session.flush()
        answer = session.execute(text("SELECT leadhub_lead_is_open(:i, :s, :l, :q)"),
                                 {"i": lead.id, "s": status, "l": lost, "q": qualified}).scalar_one()  # fmt: skip
        expected = is_open(status, lost, is_qualified=qualified, retailed=retailed)
        assert answer == expected, (status, lost, qualified, retailed)


@pytest.mark.parametrize("server_side", [False, True])
def test_a_batch_member_that_raises_is_reported_and_the_others_are_kept(
    session: Session, server_side: bool
) -> None:
    good = Intake(source=Channel.META, phone="98765 43210", external_id="m-1", occurred_at=T0)
    # A branch id no bigint holds: the database raises for that member only.
    bad = Intake(source=Channel.META, phone="91234 56789", external_id="m-2", branch_id=10**20)
    results = ingest_many(session, [good, bad, good], server_side=server_side, claim_pending=True)
    first, failed, third = results
    assert isinstance(failed, IntakeError) and failed.error
    assert not isinstance(first, IntakeError) and first.status is IntakeOutcome.CREATED
    assert not isinstance(third, IntakeError) and third.status is IntakeOutcome.DUPLICATE
    assert third.lead_id == first.lead_id
    keys = session.execute(text("SELECT external_id FROM intake_events ORDER BY id")).scalars().all()
    assert keys == ["m-1"]  # the failed member left nothing half-written; its sync retries it
