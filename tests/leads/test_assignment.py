from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from leadhub.db.models import AssignmentMember, AssignmentRule, Branch, Lead, LeadLog, User
from leadhub.db.session import session_scope
from leadhub.errors import ValidationFailed
from leadhub.leads.assignment import add_member, assign_leads, rule_is_active
from leadhub.leads.intake import Channel, Intake, ingest
from tests.conftest import ON_POSTGRES

IST = "Asia/Kolkata"


def _users(session: Session, *names: str, role: str = "CRE") -> list[int]:
    users = [User(username=n, role=role, status=True) for n in names]
    session.add_all(users)
    session.flush()
    return [u.user_id for u in users]


def _rule(session: Session, users: list[int], *, weights: list[int] | None = None, **fields: object) -> int:
    rule = AssignmentRule(name=str(fields.pop("name", "calls")), **fields)
    session.add(rule)
    session.flush()
    for i, user in enumerate(users):
        add_member(session, rule_id=rule.id, user_id=user, weight=weights[i] if weights else 1)
    return rule.id


def _new(
    session: Session, phone: str, source: Channel = Channel.KNOWLARITY, branch: int | None = None
) -> Lead:
    result = ingest(session, Intake(source=source, phone=phone, branch_id=branch))
    lead = session.get(Lead, result.lead_id)
    assert lead is not None
    return lead


def test_round_robin_takes_turns_and_logs_the_reason(session: Session) -> None:
    asha, ravi, meera = _users(session, "asha", "ravi", "meera")
    rule = _rule(session, [asha, ravi, meera])
    owners = [_new(session, f"+9198000000{i:02d}").assigned_to for i in range(6)]
    assert owners == [asha, ravi, meera, asha, ravi, meera]
    lead = session.execute(select(Lead).order_by(Lead.id).limit(1)).scalar_one()
    log = session.execute(select(LeadLog).where(LeadLog.lead_id == lead.id)).scalar_one()
    assert log.metadata_ == {"action": "assigned", "to": asha, "reason": "round_robin", "rule_id": rule}
    assert lead.assigned_at is not None


def test_a_hundred_concurrent_intakes_over_three_people_give_33_33_34(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        people = _users(s, "asha", "ravi", "meera")
        _rule(s, people)
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            barrier.wait()
            for i in range(5):
                with session_scope(factory) as s:
                    ingest(
                        s, Intake(source=Channel.META, phone=f"+9197{k:02d}{i:06d}", external_id=f"m-{k}-{i}")
                    )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with factory() as s:
        owners = Counter(s.execute(select(Lead.assigned_to)).scalars())
        counts = dict(s.execute(select(AssignmentMember.user_id, AssignmentMember.assigned_count)).all())
    assert sorted(owners.values()) == [33, 33, 34] and None not in owners
    assert counts == dict(owners)


def test_weights_share_leads_in_proportion(session: Session) -> None:
    one, two, three = _users(session, "one", "two", "three")
    _rule(session, [one, two, three], weights=[1, 2, 3], mode="weighted")
    owners = Counter(_new(session, f"+9198100000{i:02d}").assigned_to for i in range(60))
    assert owners == {one: 10, two: 20, three: 30}


def test_disabled_people_and_members_are_skipped(session: Session) -> None:
    asha, ravi, meera = _users(session, "asha", "ravi", "meera")
    rule = _rule(session, [asha, ravi, meera])
    session.get(User, ravi).status = False  # type: ignore[union-attr]
    member = session.execute(select(AssignmentMember).where(AssignmentMember.user_id == meera)).scalar_one()
    member.is_active = False
    session.flush()
    assert {_new(session, f"+9198200000{i:02d}").assigned_to for i in range(4)} == {asha}
    session.get(User, asha).status = False  # type: ignore[union-attr]
    session.flush()
    assert _new(session, "+919820000099").assigned_to is None  # nobody active: unassigned
    assert rule


def test_a_returning_customer_goes_back_to_their_owner_while_active(session: Session) -> None:
    asha, ravi = _users(session, "asha", "ravi")
    _rule(session, [asha, ravi])
    pune, nashik = Branch(name="Pune"), Branch(name="Nashik")
    session.add_all([pune, nashik])
    session.flush()
    first = _new(session, "+919830000001", Channel.WEBSITE, pune.id)
    assert first.assigned_to == asha
    again = _new(session, "+919830000001", Channel.WALK_IN, nashik.id)  # another branch: a new lead
    assert again.id != first.id and again.assigned_to == asha
    log = session.execute(select(LeadLog).where(LeadLog.lead_id == again.id)).scalar_one()
    assert log.metadata_["reason"] == "sticky"
    session.get(User, asha).status = False  # type: ignore[union-attr]
    nagpur = Branch(name="Nagpur")
    session.add(nagpur)
    session.flush()
    third = _new(session, "+919830000001", Channel.STAFF, nagpur.id)  # owner disabled: the rotation
    assert third.id not in (first.id, again.id) and third.assigned_to == ravi


def test_the_first_matching_rule_by_priority_applies_and_others_are_ignored(session: Session) -> None:
    asha, ravi, meera = _users(session, "asha", "ravi", "meera")
    _rule(session, [asha], name="meta only", channel="meta", priority=10)
    _rule(session, [ravi], name="everything", priority=50)
    _rule(session, [meera], name="shadowed", priority=90)
    assert _new(session, "+919840000001", Channel.META).assigned_to == asha
    assert _new(session, "+919840000002", Channel.KNOWLARITY).assigned_to == ravi


def test_no_rule_leaves_the_lead_unassigned(session: Session) -> None:
    assert _new(session, "+919850000001").assigned_to is None


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 11, 30, 16, 29, tzinfo=UTC), False),  # Mon 21:59 IST
        (datetime(2026, 11, 30, 16, 30, tzinfo=UTC), True),  # Mon 22:00 IST
        (datetime(2026, 11, 30, 18, 0, tzinfo=UTC), True),  # Mon 23:30 IST
        (datetime(2026, 11, 30, 18, 31, tzinfo=UTC), True),  # Tue 00:01 IST, the window began Monday
        (datetime(2026, 12, 1, 0, 29, tzinfo=UTC), True),  # Tue 05:59 IST
        (datetime(2026, 12, 1, 0, 30, tzinfo=UTC), False),  # Tue 06:00 IST
        (datetime(2026, 11, 29, 17, 0, tzinfo=UTC), False),  # Sun 22:30 IST: Sunday is not in the days
        (datetime(2026, 11, 29, 20, 30, tzinfo=UTC), False),  # Mon 02:00 IST: Sunday night's shift, off
        (datetime(2026, 11, 28, 20, 30, tzinfo=UTC), True),  # Sun 02:00 IST: Saturday night's shift, on
    ],
)
def test_night_shift_hours_cross_midnight_in_india(session: Session, utc: datetime, expected: bool) -> None:
    # Mon-Sat night shifts, 22:00-06:00 IST, each belonging to the evening it starts: Tue 00:01 IST is
    # Monday's shift (UTC still says Monday 18:31, the legacy app's "today"); Mon 02:00 is Sunday's.
    args = ("123456", time(22, 0), time(6, 0), IST)
    assert rule_is_active(*args, utc) is expected
    if ON_POSTGRES:
        sql = session.execute(text("SELECT leadhub_rule_active(:d, :f, :t, :z, :at)"),
                              {"d": args[0], "f": args[1], "t": args[2], "z": IST, "at": utc}).scalar_one()  # fmt: skip
        assert sql is expected


@pytest.mark.skipif(not ON_POSTGRES, reason="the SQL copy of the rule exists on PostgreSQL")
def test_the_sql_window_rule_matches_the_python_one_over_a_week(session: Session) -> None:
    windows = [(None, None), (time(9, 30), time(18, 0)), (time(22, 0), time(6, 0)), (time(0, 0), time(0, 0))]
    start = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    for days in ("1234567", "135", "67"):
        for t_from, t_to in windows:
            for step in range(0, 7 * 24 * 60, 37):
                at = start + timedelta(minutes=step)
                sql = session.execute(text("SELECT leadhub_rule_active(:d, :f, :t, :z, :at)"),
                                      {"d": days, "f": t_from, "t": t_to, "z": IST, "at": at}).scalar_one()  # fmt: skip
                assert sql is rule_is_active(days, t_from, t_to, IST, at), (days, t_from, t_to, at)


def test_outside_active_hours_the_lead_waits_unassigned(session: Session) -> None:
    [asha] = _users(session, "asha")
    now_ist = datetime.now(UTC).astimezone(ZoneInfo(IST))
    closed_from = (now_ist + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    closed_to = (now_ist + timedelta(hours=3)).time().replace(second=0, microsecond=0)
    _rule(session, [asha], active_from=closed_from, active_to=closed_to, timezone=IST)
    assert _new(session, "+919860000001").assigned_to is None


def test_managers_assign_and_reassign_in_bulk_with_who_and_why(session: Session) -> None:
    asha, ravi, tl = _users(session, "asha", "ravi", "tl")
    _rule(session, [asha])
    leads = [_new(session, f"+9198700000{i:02d}") for i in range(3)]
    done = assign_leads(session, [lead.id for lead in leads], to_user=ravi, by_user=tl, why="asha on leave")
    assert [a.lead_id for a in done] == [lead.id for lead in leads]
    for lead in leads:
        session.refresh(lead)
        assert lead.assigned_to == ravi
        last = session.execute(
            select(LeadLog).where(LeadLog.lead_id == lead.id).order_by(LeadLog.id.desc()).limit(1)
        ).scalar_one()
        assert (last.created_by, last.remarks) == (tl, "asha on leave")
        assert last.metadata_ == {"action": "assigned", "to": ravi, "from": asha, "reason": "manual"}
    assert assign_leads(session, [leads[0].id], to_user=ravi, by_user=tl) == []  # already theirs
    session.get(User, asha).status = False  # type: ignore[union-attr]
    session.flush()
    with pytest.raises(ValidationFailed, match="disabled"):
        assign_leads(session, [leads[0].id], to_user=asha, by_user=tl)
    with pytest.raises(ValidationFailed, match="no such lead"):
        assign_leads(session, [999_999], to_user=ravi, by_user=tl)


def test_a_newcomer_joins_the_rotation_at_the_lowest_count(session: Session) -> None:
    asha, ravi, meera = _users(session, "asha", "ravi", "meera")
    rule = _rule(session, [asha, ravi])
    for i in range(10):
        _new(session, f"+9198800000{i:02d}")
    member = add_member(session, rule_id=rule, user_id=meera)
    assert member.assigned_count == 5
    owners = Counter(_new(session, f"+9198900000{i:02d}").assigned_to for i in range(3))
    assert owners == {asha: 1, ravi: 1, meera: 1}


def test_someone_back_from_leave_rejoins_at_the_lowest_count_not_their_old_one(session: Session) -> None:
    asha, ravi = _users(session, "asha", "ravi")
    rule = _rule(session, [asha, ravi])
    member = session.execute(select(AssignmentMember).where(AssignmentMember.user_id == ravi)).scalar_one()
    member.is_active = False  # on leave
    session.flush()
    for i in range(6):
        _new(session, f"+9198990000{i:02d}")  # all to asha
    add_member(session, rule_id=rule, user_id=ravi)  # back
    assert member.is_active and member.assigned_count == 6
    owners = Counter(_new(session, f"+9198991000{i:02d}").assigned_to for i in range(4))
    assert owners == {asha: 2, ravi: 2}
