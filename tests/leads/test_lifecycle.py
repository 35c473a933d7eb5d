"""The status vocabulary and transition table as pure tables of cases (no database)."""

from __future__ import annotations

import itertools

import pytest

from leadhub.leads.lifecycle import (
    TERMINAL_STATES,
    TRANSITIONS,
    Action,
    LeadState,
    TransitionNotAllowed,
    is_open_state,
    legacy_columns,
    next_state,
    state_of,
)
from leadhub.leads.status import is_open

S = LeadState

# (status, IS_LOST, is_qualified, TEST_DRIVE, BOOKED, RETAILED) -> state. Every status the legacy app
# writes (legacy-app.md §1.15, §4.2) and every row shape ../shared/legacy/fixture.sql generates.
LEGACY_CASES: list[
    tuple[str | None, bool | None, bool | None, bool | None, bool | None, bool | None, LeadState]
] = [
    ("New", None, False, None, None, None, S.NEW),
    ("New", False, False, None, None, None, S.NEW),
    (None, None, None, None, None, None, S.NEW),
    ("", None, False, None, None, None, S.NEW),
    ("fresh", None, False, None, None, None, S.NEW),
    ("Assigned", None, False, None, None, None, S.NEW),
    ("Open", None, None, None, None, None, S.NEW),
    (" new ", None, None, None, None, None, S.NEW),
    ("Working", None, False, None, None, None, S.CONTACTED),
    ("Some note a CRE typed", None, False, None, None, None, S.CONTACTED),
    ("Pending", None, False, None, None, None, S.PENDING),
    ("FollowUp", None, False, None, None, None, S.PENDING),
    ("PENDING", None, None, None, None, None, S.PENDING),
    # legacy qualifyLead wrote Pending with is_qualified = true
    ("Pending", None, True, None, None, None, S.QUALIFIED),
    ("Qualified", None, True, None, None, None, S.QUALIFIED),
    ("Qualified", None, False, None, None, None, S.QUALIFIED),
    ("New", None, True, None, None, None, S.QUALIFIED),
    ("Qualified", None, True, True, False, False, S.TEST_DRIVE),
    ("Test Drive", None, None, None, None, None, S.TEST_DRIVE),
    ("Booked", None, True, True, True, False, S.BOOKED),
    ("Booked", None, False, None, None, None, S.BOOKED),
    ("Qualified", None, True, False, True, None, S.BOOKED),
    ("Won", None, True, False, True, True, S.WON),
    ("Won", None, None, None, None, None, S.WON),
    ("Booked-Retail", None, True, None, None, None, S.WON),
    ("Qualified", None, True, None, None, True, S.WON),  # CRE set RETAILED directly
    ("Closed", None, None, None, None, None, S.CLOSED),
    ("Closed_due_to_sale_elsewhere", None, False, None, None, None, S.CLOSED),
    ("Closed_due_to_sale_elsewhere", None, True, None, True, None, S.CLOSED),
    ("Lost", True, False, None, None, None, S.LOST),
    ("Lost", None, False, None, None, None, S.LOST),
    ("Lost - Price Concern", True, False, None, None, None, S.LOST),
    ("lost - bought elsewhere", None, None, None, None, None, S.LOST),
    ("Qualified", True, True, True, True, None, S.LOST),  # "IS_LOST" wins over every flag
    ("New", True, None, None, None, None, S.LOST),
    ("Not interested at all", True, None, None, None, None, S.LOST),
    ("Disqualified", True, False, None, None, None, S.DISQUALIFIED),
    ("Disqualified", None, None, None, None, None, S.DISQUALIFIED),
    ("Unqualified", True, False, None, None, None, S.DISQUALIFIED),
    ("Unqualified", None, False, None, None, None, S.DISQUALIFIED),
    ("Unqualified - wrong number", True, None, None, None, None, S.DISQUALIFIED),
    # flags on a lead that is not qualified do not count (the legacy tabs read them among qualified leads)
    ("Working", None, False, True, None, None, S.CONTACTED),
    ("Pending", None, False, None, None, True, S.PENDING),
]


@pytest.mark.parametrize(
    ("status", "is_lost", "is_qualified", "test_drive", "booked", "retailed", "expected"), LEGACY_CASES
)
def test_every_legacy_row_shape_maps_to_one_state(
    status: str | None,
    is_lost: bool | None,
    is_qualified: bool | None,
    test_drive: bool | None,
    booked: bool | None,
    retailed: bool | None,
    expected: LeadState,
) -> None:
    state = state_of(
        status,
        is_lost=is_lost,
        is_qualified=is_qualified,
        test_drive=test_drive,
        booked=booked,
        retailed=retailed,
    )
    assert state is expected
    # open-ness never depends on TEST_DRIVE / BOOKED: both are open states
    assert is_open(status, is_lost, is_qualified=is_qualified, retailed=retailed) == (
        expected not in TERMINAL_STATES
    )


@pytest.mark.parametrize("state", list(LeadState))
def test_legacy_columns_round_trip_to_the_same_state(state: LeadState) -> None:
    cols = legacy_columns(state)
    assert (
        state_of(
            cols.status,
            is_lost=cols.is_lost,
            is_qualified=cols.is_qualified,
            test_drive=cols.test_drive,
            booked=cols.booked,
            retailed=cols.retailed,
        )
        is state
    )
    # the old app's only lost signal agrees with leadhub's
    assert bool(cols.is_lost) == (state in (LeadState.LOST, LeadState.DISQUALIFIED))


@pytest.mark.parametrize(
    "state",
    [LeadState.NEW, LeadState.CONTACTED, LeadState.PENDING, LeadState.CLOSED, LeadState.LOST],
)
def test_states_before_qualification_ignore_stale_funnel_flags(state: LeadState) -> None:
    """A reopened lead keeps its old TEST_DRIVE/BOOKED flags; they must not pull it back up the funnel."""
    cols = legacy_columns(state)
    is_qualified = cols.is_qualified if cols.is_qualified is not None else False
    assert (
        state_of(cols.status, is_lost=cols.is_lost, is_qualified=is_qualified, test_drive=True, booked=True)
        is state
    )


@pytest.mark.parametrize(("state", "action"), list(itertools.product(LeadState, Action)))
def test_transition_table(state: LeadState, action: Action) -> None:
    if (state, action) in TRANSITIONS:
        assert next_state(state, action) is TRANSITIONS[(state, action)]
        return
    with pytest.raises(TransitionNotAllowed) as raised:
        next_state(state, action)
    assert state.value in raised.value.message and action.value in raised.value.message
    assert raised.value.details == {"state": state.value, "action": action.value}


def test_terminal_states_only_reopen_and_won_is_final() -> None:
    for (state, action), _ in TRANSITIONS.items():
        if state in TERMINAL_STATES:
            assert action is Action.REOPEN
    assert not [a for (s, a) in TRANSITIONS if s is LeadState.WON]
    assert all(is_open_state(to) for (s, a), to in TRANSITIONS.items() if a is Action.REOPEN)
