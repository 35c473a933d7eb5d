"""Race-safety on the real database, with real threads and one connection each."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.db.models import Branch, Customer, IntakeEvent, Lead
from leadhub.db.session import session_scope
from leadhub.leads.intake import Channel, Intake, IntakeOutcome, IntakeResult, ingest

FORMATS = ["{m}", "91{m}", "0{m}", "+91 {a} {b}", "0091-{m}", "(+91) {a}-{b}", "+91{m}"]


def _written(mobile: str, style: int) -> str:
    return FORMATS[style % len(FORMATS)].format(m=mobile, a=mobile[:5], b=mobile[5:])


def _branches(factory: sessionmaker[Session], n: int) -> list[int]:
    with session_scope(factory) as s:
        rows = [Branch(name=f"B{i}") for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [b.id for b in rows]


def test_32_threads_of_50_intakes_for_20_phones_make_exactly_20_customers(
    factory: sessionmaker[Session],
) -> None:
    branches = _branches(factory, 3)
    mobiles = [str(9_000_000_000 + 7_919 * i) for i in range(20)]

    def worker(thread: int) -> list[IntakeResult]:
        rng = random.Random(thread)
        results = []
        for i in range(50):
            mobile = rng.choice(mobiles)
            intake = Intake(
                source=rng.choice([Channel.KNOWLARITY, Channel.WALK_IN, Channel.WEBSITE]),
                phone=_written(mobile, rng.randrange(len(FORMATS))),
                external_id=f"t{thread}-{i}",
                name=f"Person {mobile[-4:]}",
                branch_id=rng.choice(branches),
            )
            with session_scope(factory) as session:
                results.append(ingest(session, intake))
        return results

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = [r for batch in pool.map(worker, range(32)) for r in batch]

    assert len(results) == 1600
    assert all(r.status in (IntakeOutcome.CREATED, IntakeOutcome.ATTACHED) for r in results)
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Customer)).scalar_one() == 20
        assert s.execute(select(func.count()).where(Lead.customer_id.is_(None))).scalar_one() == 0
        mismatched = s.execute(
            select(func.count())
            .select_from(Lead)
            .join(Customer, Customer.id == Lead.customer_id)
            .where(Lead.phone_number_normalized != Customer.phone_number_normalized)
        ).scalar_one()
        assert mismatched == 0
        # the attach rule under concurrency: one open lead per (customer, branch)
        per_pair = s.execute(
            select(func.count())
            .select_from(Lead)
            .group_by(Lead.customer_id, Lead.branch_id)
            .having(func.count() > 1)
        ).all()
        assert per_pair == []
        assert s.execute(select(func.count()).select_from(IntakeEvent)).scalar_one() == 1600


def test_the_same_external_id_sent_5_times_at_once_makes_one_lead(factory: sessionmaker[Session]) -> None:
    for round_ in range(5):
        barrier = threading.Barrier(5)

        def send(_: int, round_: int = round_, barrier: threading.Barrier = barrier) -> IntakeResult:
            intake = Intake(
                source=Channel.KNOWLARITY, phone=f"+9198765{round_:05d}", external_id=f"call-{round_}"
            )
            barrier.wait()
            with session_scope(factory) as session:
                return ingest(session, intake)

        with ThreadPoolExecutor(max_workers=5) as pool:
            results = list(pool.map(send, range(5)))
        assert sorted(r.status.value for r in results) == ["created"] + ["duplicate"] * 4
        assert len({r.lead_id for r in results}) == 1
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Lead)).scalar_one() == 5


def test_two_simultaneous_first_calls_from_a_new_number_make_one_lead(factory: sessionmaker[Session]) -> None:
    [branch] = _branches(factory, 1)
    for round_ in range(10):
        barrier = threading.Barrier(2)

        def call(n: int, round_: int = round_, barrier: threading.Barrier = barrier) -> IntakeResult:
            intake = Intake(
                source=Channel.KNOWLARITY,
                phone=f"98760{round_:05d}",
                external_id=f"r{round_}-{n}",
                branch_id=branch,
            )
            barrier.wait()
            with session_scope(factory) as session:
                return ingest(session, intake)

        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(call, range(2)))
        assert sorted(r.status.value for r in results) == ["attached", "created"]
        assert results[0].lead_id == results[1].lead_id
