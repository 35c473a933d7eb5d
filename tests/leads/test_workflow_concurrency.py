"""Concurrent transitions on one lead, with real threads and one connection each."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from leadhub.db.models import Branch, Lead, LeadLog, User
from leadhub.db.session import session_scope
from leadhub.db.types import utcnow
from leadhub.leads import workflow
from leadhub.leads.intake import Channel, Intake, IntakeOutcome, IntakeResult, ingest
from leadhub.leads.lifecycle import LeadState, TransitionNotAllowed
from leadhub.leads.reasons import seed_default_reasons


def _setup(factory: sessionmaker[Session], status: str, *, qualified: bool = False) -> tuple[list[int], int]:
    with session_scope(factory) as s:
        users = [User(username=f"cre{i}", role="CRE") for i in range(8)]
        lead = Lead(status=status, is_qualified=qualified, total_attempts=0)
        s.add_all([*users, lead])
        s.flush()
        return [u.user_id for u in users], lead.id


def test_8_threads_of_25_calls_and_follow_ups_lose_no_attempt(factory: sessionmaker[Session]) -> None:
    users, lead_id = _setup(factory, "New")

    def worker(by: int) -> None:
        for i in range(25):
            with session_scope(factory) as s:
                if i % 2:
                    workflow.log_call_attempt(s, lead_id, by=by, outcome="RNR")
                else:
                    workflow.set_pending(
                        s, lead_id, by=by, next_followup_at=utcnow() + timedelta(hours=i + 1), remarks="later"
                    )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(worker, users))

    with factory() as s:
        assert s.get_one(Lead, lead_id).total_attempts == 200
        attempt_numbers = (
            s.execute(select(LeadLog.attempt_no).where(LeadLog.lead_id == lead_id)).scalars().all()
        )
        assert sorted(int(n or 0) for n in attempt_numbers) == list(
            range(1, 201)
        )  # each change saw the one before it
        assert workflow.current_state(s, lead_id) is LeadState.PENDING


def test_8_threads_marking_one_booked_lead_won_win_exactly_once(factory: sessionmaker[Session]) -> None:
    users, lead_id = _setup(factory, "Booked", qualified=True)

    def worker(by: int) -> str:
        try:
            with session_scope(factory) as s:
                workflow.mark_won(s, lead_id, by=by)
        except TransitionNotAllowed as error:
            return error.message
        return "won"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(worker, users))

    assert outcomes.count("won") == 1
    assert all("cannot mark_won a lead that is won" in o for o in outcomes if o != "won")
    with factory() as s:
        logs = s.execute(select(LeadLog).where(LeadLog.lead_id == lead_id)).scalars().all()
        assert len(logs) == 1 and logs[0].new_status == "Won"


def test_racing_lose_and_qualify_leave_one_consistent_story(factory: sessionmaker[Session]) -> None:
    """Whichever lands first, the second sees its result: the log chain has no gap or fork."""
    users, lead_id = _setup(factory, "Working")
    with session_scope(factory) as s:
        seed_default_reasons(s)

    def worker(by: int) -> None:
        try:
            with session_scope(factory) as s:
                if by % 2:
                    workflow.lose(s, lead_id, by=by, reason="PriceConcern")
                else:
                    workflow.qualify(s, lead_id, by=by, category="Hot Lead", model="Hector")
        except TransitionNotAllowed:
            pass

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(worker, users))

    with factory() as s:
        logs = (
            s.execute(select(LeadLog).where(LeadLog.lead_id == lead_id).order_by(LeadLog.id)).scalars().all()
        )
        chain = [(log.metadata_["from_state"], log.metadata_["to_state"]) for log in logs]
        assert chain[0][0] == "contacted"
        for before, after in itertools.pairwise(chain):
            assert before[1] == after[0]
        assert workflow.current_state(s, lead_id).value == chain[-1][1]


def test_an_enquiry_racing_a_loss_never_attaches_to_the_lost_lead(factory: sessionmaker[Session]) -> None:
    """The intake's open-lead look-up waits for the lifecycle's row lock and re-reads the lead."""
    with session_scope(factory) as s:
        seed_default_reasons(s)
        branch = Branch(name="Pune")
        user = User(username="cre", role="CRE")
        s.add_all([branch, user])
        s.flush()
        branch_id, by = branch.id, user.user_id
        first = ingest(s, Intake(source=Channel.WALK_IN, phone="9876543210", branch_id=branch_id))
    assert first.lead_id is not None

    losing = factory()
    workflow.lose(losing, first.lead_id, by=by, reason="PriceConcern")  # holds the lead's lock
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_ingest_again, factory, branch_id)
        if losing.get_bind().dialect.name == "postgresql":
            _wait_until_blocked(losing)
        losing.commit()
        losing.close()
        again = pending.result()
    assert again.status is IntakeOutcome.CREATED and again.lead_id != first.lead_id
    with factory() as s:
        attached = s.execute(
            select(LeadLog).where(LeadLog.lead_id == first.lead_id, LeadLog.new_status != "Lost")
        ).all()
        assert attached == []


def _ingest_again(factory: sessionmaker[Session], branch_id: int) -> IntakeResult:
    with session_scope(factory) as s:
        return ingest(s, Intake(source=Channel.WALK_IN, phone="+91 98765 43210", branch_id=branch_id))


def _wait_until_blocked(holder: Session) -> None:
    """Until another connection waits on a lock that `holder` holds (PostgreSQL), at most ~30 s."""
    import time

    engine = holder.get_bind().engine
    holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
    for _ in range(600):
        with engine.connect() as conn:
            waiting = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
                {"pid": holder_pid},
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the enquiry never waited on the lead lock")
