"""Lifecycle services on the real database: every allowed and forbidden transition, the legacy mapping
read back from stored rows, required reasons and follow-ups, one activity row per change."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.db.models import Lead, LeadLog, LeadQualification, User
from leadhub.db.session import session_scope
from leadhub.db.types import utcnow
from leadhub.errors import NotFoundError, ValidationFailed
from leadhub.leads import workflow
from leadhub.leads.lifecycle import (
    TERMINAL_STATES,
    TRANSITIONS,
    Action,
    LeadState,
    TransitionNotAllowed,
    legacy_columns,
)
from leadhub.leads.reasons import InvalidReasonError, ReasonKind, seed_default_reasons, set_reason_active
from leadhub.leads.status import open_lead_clause
from leadhub.leads.workflow import TransitionResult
from tests.leads.test_lifecycle import LEGACY_CASES

Call = Callable[[Session, int, int], TransitionResult]


def _tomorrow() -> datetime:
    return utcnow() + timedelta(days=1)


CALLS: dict[Action, Call] = {
    Action.LOG_CALL: lambda s, lead, by: workflow.log_call_attempt(s, lead, by=by, outcome="RNR"),
    Action.SET_PENDING: lambda s, lead, by: workflow.set_pending(
        s, lead, by=by, next_followup_at=_tomorrow(), remarks="asked to call back"
    ),
    Action.QUALIFY: lambda s, lead, by: workflow.qualify(
        s,
        lead,
        by=by,
        category="Hot Lead",
        model="Hector",
        variant="Sharp",
        location="Pune",
        timeline="30 days",
    ),
    Action.RECORD_TEST_DRIVE: lambda s, lead, by: workflow.record_test_drive(s, lead, by=by),
    Action.BOOK: lambda s, lead, by: workflow.book(s, lead, by=by),
    Action.MARK_WON: lambda s, lead, by: workflow.mark_won(s, lead, by=by),
    Action.CLOSE: lambda s, lead, by: workflow.close(s, lead, by=by, why="bought on his other lead"),
    Action.LOSE: lambda s, lead, by: workflow.lose(s, lead, by=by, reason="PriceConcern"),
    Action.DISQUALIFY: lambda s, lead, by: workflow.disqualify(s, lead, by=by, reason="NotInterested"),
    Action.REOPEN: lambda s, lead, by: workflow.reopen(s, lead, by=by, why="customer called again"),
}


def _user(session: Session, name: str = "cre1") -> int:
    user = User(username=name, role="CRE", full_name=name.upper())
    session.add(user)
    session.flush()
    return user.user_id


def _lead_in(session: Session, state: LeadState, *, attempts: int = 0) -> int:
    """A lead stored the way leadhub writes `state` (legacy_columns)."""
    cols = legacy_columns(state)
    lead = Lead(
        full_name="Customer",
        status=cols.status,
        is_lost=cols.is_lost,
        is_qualified=bool(cols.is_qualified),
        total_attempts=attempts,
    )
    session.add(lead)
    session.flush()
    if cols.test_drive or cols.booked or cols.retailed:
        session.add(
            LeadQualification(
                lead_id=lead.id,
                qualified_category="Hot Lead",
                test_drive=cols.test_drive or state in (LeadState.BOOKED, LeadState.WON),
                booked=cols.booked or state is LeadState.WON,
                retailed=cols.retailed,
            )
        )
        session.flush()
    return lead.id


def _logs(session: Session, lead_id: int) -> list[LeadLog]:
    return list(
        session.execute(select(LeadLog).where(LeadLog.lead_id == lead_id).order_by(LeadLog.id)).scalars()
    )


@pytest.fixture
def seeded(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_scope(factory) as s:
        seed_default_reasons(s)
    return factory


@pytest.mark.parametrize(("state", "action"), list(itertools.product(LeadState, Action)))
def test_every_transition_on_the_database(
    seeded: sessionmaker[Session], state: LeadState, action: Action
) -> None:
    with session_scope(seeded) as s:
        by, lead_id = _user(s), _lead_in(s, state, attempts=2)
    expected = TRANSITIONS.get((state, action))
    with seeded() as s:
        if expected is None:
            with pytest.raises(
                TransitionNotAllowed, match=f"cannot {action.value} a lead that is {state.value}"
            ):
                CALLS[action](s, lead_id, by)
            s.rollback()
        else:
            result = CALLS[action](s, lead_id, by)
            s.commit()
            assert (result.from_state, result.to_state) == (state, expected)
    with seeded() as s:
        logs = _logs(s, lead_id)
        lead = s.get_one(Lead, lead_id)
        if expected is None:
            assert logs == []
            assert workflow.current_state(s, lead_id) is state
            return
        assert workflow.current_state(s, lead_id) is expected
        cols = legacy_columns(expected)
        assert (lead.status, lead.is_lost) == (cols.status, cols.is_lost)
        assert len(logs) == 1
        log = logs[0]
        assert log.created_by == by and log.created_at is not None
        assert log.old_status == legacy_columns(state).status and log.new_status == cols.status
        assert log.metadata_["transition"] == action.value
        assert (log.metadata_["from_state"], log.metadata_["to_state"]) == (state.value, expected.value)
        counted = action in (Action.LOG_CALL, Action.SET_PENDING)
        assert lead.total_attempts == (3 if counted else 2)
        assert log.attempt_no == (3 if counted else None)
        if expected in TERMINAL_STATES:
            assert lead.next_followup_at is None
        in_open = s.execute(select(Lead.id).where(Lead.id == lead_id, open_lead_clause())).first()
        assert (in_open is not None) == (expected not in TERMINAL_STATES)


@pytest.mark.parametrize(
    ("status", "is_lost", "is_qualified", "test_drive", "booked", "retailed", "expected"), LEGACY_CASES
)
def test_stored_legacy_rows_read_as_one_state_and_the_open_clause_agrees(
    factory: sessionmaker[Session],
    status: str | None,
    is_lost: bool | None,
    is_qualified: bool | None,
    test_drive: bool | None,
    booked: bool | None,
    retailed: bool | None,
    expected: LeadState,
) -> None:
    with session_scope(factory) as s:
        lead = Lead(status=status, is_lost=is_lost, is_qualified=is_qualified)
        s.add(lead)
        s.flush()
        if (test_drive, booked, retailed) != (None, None, None):
            s.add(LeadQualification(lead_id=lead.id, test_drive=test_drive, booked=booked, retailed=retailed))
        lead_id = lead.id
    with factory() as s:
        assert workflow.current_state(s, lead_id) is expected
        in_open = s.execute(select(Lead.id).where(Lead.id == lead_id, open_lead_clause())).first()
        assert (in_open is not None) == (expected not in TERMINAL_STATES)


def test_qualify_writes_one_qualification_row_and_updates_it_later(seeded: sessionmaker[Session]) -> None:
    with session_scope(seeded) as s:
        cre, tl = _user(s, "cre"), _user(s, "tl")
        lead_id = _lead_in(s, LeadState.CONTACTED)
    with session_scope(seeded) as s:
        workflow.qualify(s, lead_id, by=cre, category="Warm Lead", model="Astor", remarks="wants a demo")
    with session_scope(seeded) as s:
        result = workflow.qualify(s, lead_id, by=tl, category="Hot Lead", model="Hector", variant="Savvy")
        assert (result.from_state, result.to_state) == (LeadState.QUALIFIED, LeadState.QUALIFIED)
    with seeded() as s:
        rows = (
            s.execute(select(LeadQualification).where(LeadQualification.lead_id == lead_id)).scalars().all()
        )
        assert len(rows) == 1
        q = rows[0]
        assert (q.qualified_category, q.model_interested, q.variant) == ("Hot Lead", "Hector", "Savvy")
        assert q.qualified_by == cre  # who first qualified it
        lead = s.get_one(Lead, lead_id)
        assert (lead.status, lead.is_qualified) == ("Qualified", True)
        actions = [log.metadata_["action"] for log in _logs(s, lead_id)]
        assert actions == ["lead_qualified", "qualification_updated"]


def test_qualify_can_set_a_follow_up_and_refuses_a_past_one(seeded: sessionmaker[Session]) -> None:
    when = datetime(2030, 1, 2, 5, 30, tzinfo=UTC)
    with session_scope(seeded) as s:
        by, lead_id = _user(s), _lead_in(s, LeadState.PENDING)
    with seeded() as s, pytest.raises(ValidationFailed, match="not in the future"):
        workflow.qualify(
            s,
            lead_id,
            by=by,
            category="Hot",
            model="Astor",
            next_followup_at=datetime(2020, 1, 1, tzinfo=UTC),
        )
    with session_scope(seeded) as s:
        workflow.qualify(s, lead_id, by=by, category="Hot", model="Astor", next_followup_at=when)
    with seeded() as s:
        assert s.get_one(Lead, lead_id).next_followup_at == when
        q = s.execute(select(LeadQualification).where(LeadQualification.lead_id == lead_id)).scalar_one()
        assert q.next_followup_at == when
        (log,) = _logs(s, lead_id)
        assert log.metadata_["nextFollowupAt"] == when.isoformat()


def test_booking_and_winning_set_the_legacy_funnel_flags(seeded: sessionmaker[Session]) -> None:
    with session_scope(seeded) as s:
        by, lead_id = _user(s), _lead_in(s, LeadState.NEW)
    steps: list[Call] = [
        CALLS[Action.QUALIFY],
        CALLS[Action.RECORD_TEST_DRIVE],
        CALLS[Action.BOOK],
        CALLS[Action.MARK_WON],
    ]
    for step in steps:
        with session_scope(seeded) as s:
            step(s, lead_id, by)
    with seeded() as s:
        q = s.execute(select(LeadQualification).where(LeadQualification.lead_id == lead_id)).scalar_one()
        assert (q.test_drive, q.booked, q.retailed) == (True, True, True)
        assert s.get_one(Lead, lead_id).status == "Won"
        assert workflow.current_state(s, lead_id) is LeadState.WON
        assert len(_logs(s, lead_id)) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"next_followup_at": None, "remarks": "x"}, "follow-up time is required"),
        ({"next_followup_at": datetime(2030, 1, 1, 10, 0), "remarks": "x"}, "needs a time zone"),
        ({"next_followup_at": datetime(2020, 1, 1, tzinfo=UTC), "remarks": "x"}, "not in the future"),
        ({"next_followup_at": datetime(2030, 1, 1, tzinfo=UTC), "remarks": "  "}, "remarks are required"),
        (
            {"next_followup_at": datetime(2030, 1, 1, tzinfo=UTC), "remarks": "x", "reason": "Nope"},
            "not an active pending",
        ),
    ],
)
def test_pending_needs_a_future_follow_up_and_remarks(
    seeded: sessionmaker[Session], kwargs: dict[str, object], message: str
) -> None:
    with session_scope(seeded) as s:
        by, lead_id = _user(s), _lead_in(s, LeadState.NEW)
    with seeded() as s, pytest.raises(ValidationFailed, match=message):
        workflow.set_pending(s, lead_id, by=by, **kwargs)  # type: ignore[arg-type]
    with seeded() as s:
        assert _logs(s, lead_id) == []
        assert s.get_one(Lead, lead_id).total_attempts == 0


def test_pending_records_the_follow_up_and_an_optional_reason(seeded: sessionmaker[Session]) -> None:
    when = datetime(2030, 1, 1, 11, 0, tzinfo=UTC)
    with session_scope(seeded) as s:
        by, lead_id = _user(s), _lead_in(s, LeadState.NEW)
    with session_scope(seeded) as s:
        workflow.set_pending(s, lead_id, by=by, next_followup_at=when, remarks="call at 4:30", reason="RNR")
    with seeded() as s:
        lead = s.get_one(Lead, lead_id)
        assert (lead.status, lead.next_followup_at, lead.lead_remarks) == ("Pending", when, "call at 4:30")
        (log,) = _logs(s, lead_id)
        assert log.metadata_["reason"] == "RNR" and log.metadata_["nextFollowupAt"] == when.isoformat()


@pytest.mark.parametrize(
    ("action", "reason", "message"),
    [
        (Action.LOSE, None, "a lost reason is required"),
        (Action.LOSE, "", "a lost reason is required"),
        (Action.LOSE, "Because", "'Because' is not an active lost reason"),
        (Action.LOSE, "NotInterested", "not an active lost reason"),  # a disqualify reason
        (Action.DISQUALIFY, None, "a disqualified reason is required"),
        (Action.DISQUALIFY, "PriceConcern", "not an active disqualified reason"),
    ],
)
def test_lose_and_disqualify_need_a_reason_from_the_list(
    seeded: sessionmaker[Session], action: Action, reason: str | None, message: str
) -> None:
    with session_scope(seeded) as s:
        by, lead_id = _user(s), _lead_in(s, LeadState.CONTACTED)
    service = workflow.lose if action is Action.LOSE else workflow.disqualify
    with seeded() as s, pytest.raises(InvalidReasonError, match=message):
        service(s, lead_id, by=by, reason=reason)
    with seeded() as s:
        assert _logs(s, lead_id) == []
        assert workflow.current_state(s, lead_id) is LeadState.CONTACTED


def test_a_deactivated_reason_can_no_longer_be_chosen_but_history_keeps_it(
    seeded: sessionmaker[Session],
) -> None:
    with session_scope(seeded) as s:
        by, first, second = _user(s), _lead_in(s, LeadState.NEW), _lead_in(s, LeadState.NEW)
    with session_scope(seeded) as s:
        workflow.lose(s, first, by=by, reason="PriceConcern")
        set_reason_active(s, kind=ReasonKind.LOST, code="PriceConcern", active=False)
    with seeded() as s, pytest.raises(InvalidReasonError, match="not an active lost reason"):
        workflow.lose(s, second, by=by, reason="PriceConcern")
    with seeded() as s:
        (log,) = _logs(s, first)
        assert (log.metadata_["reason"], log.metadata_["reason_label"]) == ("PriceConcern", "Price concern")
        assert s.get_one(Lead, first).is_lost is True


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s, lead, by: workflow.reopen(s, lead, by=by, why=" "), "needs a reason"),
        (lambda s, lead, by: workflow.close(s, lead, by=by, why=""), "needs a reason"),
        (
            lambda s, lead, by: workflow.qualify(s, lead, by=by, category="Hot", model=""),
            "category and a model",
        ),
    ],
)
def test_reopen_close_and_qualify_refuse_missing_input(
    seeded: sessionmaker[Session], call: Call, message: str
) -> None:
    with session_scope(seeded) as s:
        by, lead_id = _user(s), _lead_in(s, LeadState.LOST)
    with seeded() as s, pytest.raises(ValidationFailed, match=message):
        call(s, lead_id, by)


def test_unknown_lead_and_unknown_user_are_not_found(seeded: sessionmaker[Session]) -> None:
    with session_scope(seeded) as s:
        by, lead_id = _user(s), _lead_in(s, LeadState.NEW)
    with seeded() as s, pytest.raises(NotFoundError, match="no lead with id 999999"):
        workflow.log_call_attempt(s, 999_999, by=by)
    with seeded() as s, pytest.raises(NotFoundError, match="no user with id 424242"):
        workflow.log_call_attempt(s, lead_id, by=424_242)


def test_reopened_lead_keeps_its_story_and_is_open_again(seeded: sessionmaker[Session]) -> None:
    with session_scope(seeded) as s:
        by, lead_id = _user(s), _lead_in(s, LeadState.NEW)
    with session_scope(seeded) as s:
        workflow.disqualify(s, lead_id, by=by, reason="WrongNumber")
    with session_scope(seeded) as s:
        workflow.reopen(s, lead_id, by=by, why="right number after all")
    with seeded() as s:
        lead = s.get_one(Lead, lead_id)
        assert (lead.status, lead.is_lost) == ("Working", None)
        assert [(log.old_status, log.new_status) for log in _logs(s, lead_id)] == [
            ("New", "Disqualified"),
            ("Disqualified", "Working"),
        ]
        assert s.execute(select(func.count()).where(Lead.id == lead_id, open_lead_clause())).scalar_one() == 1
