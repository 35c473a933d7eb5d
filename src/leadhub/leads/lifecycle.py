"""The lead lifecycle: one state vocabulary, its mapping to and from the legacy columns, and the
transition table. Pure: no database, so every rule here is testable from a table of cases.

The legacy app spelled statuses five ways (../shared/legacy/legacy-app.md §1.15, §4.2): `New`, `fresh`,
`Pending`, `Qualified`, `Unqualified`, `Disqualified`, `Lost`, free text such as `Lost - Price
Concern`, `Booked`, `Won`, `Closed_due_to_sale_elsewhere`, and the PATCH enum's `Assigned`, `Working`,
`FollowUp`, `Booked-Retail`, `Closed`, `Open`. Its reliable signals are the flag columns: `"IS_LOST"`
(NULL means not lost), `is_qualified`, and the `leads_qualification` funnel flags. `state_of` reads all
of them; `legacy_columns` writes values the old app's CRE tabs classify the same way. The table both
ways is in docs/lifecycle.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from leadhub.errors import LeadhubError


class LeadState(StrEnum):
    NEW = "new"  # nobody has worked it yet
    CONTACTED = "contacted"  # called at least once, not qualified, no follow-up pending
    PENDING = "pending"  # a follow-up is set, not qualified yet
    QUALIFIED = "qualified"  # the CRE qualified it (category, model, ...)
    TEST_DRIVE = "test_drive"  # qualified and a test drive happened
    BOOKED = "booked"  # a booking exists
    WON = "won"  # retailed: the car was sold on this lead
    CLOSED = "closed"  # ended without a loss on this lead (the customer bought through another lead)
    LOST = "lost"  # a real prospect that did not buy (price, competitor, ...)
    DISQUALIFIED = "disqualified"  # never a prospect (wrong number, not interested, job seeker, ...)


# A lead is open unless its story has ended. The one definition; leads/status.py turns it into SQL.
TERMINAL_STATES = frozenset({LeadState.WON, LeadState.CLOSED, LeadState.LOST, LeadState.DISQUALIFIED})
# States that mean "qualified or further along": the funnel flags only count on these leads.
QUALIFIED_FAMILY = frozenset({LeadState.QUALIFIED, LeadState.TEST_DRIVE, LeadState.BOOKED, LeadState.WON})

# Every status string the legacy app or its fixture writes, lower-cased and trimmed, and its state when
# "IS_LOST" is not true and no funnel flag says more (§1.15; ../shared/legacy/fixture.sql).
LEGACY_STATUSES: dict[str, LeadState] = {
    "": LeadState.NEW,
    "new": LeadState.NEW,
    "fresh": LeadState.NEW,  # walk-ins and reception test drives
    "assigned": LeadState.NEW,  # assignment must not change the status (§4.2)
    "open": LeadState.NEW,  # only ever tested for, never written
    "working": LeadState.CONTACTED,
    "contacted": LeadState.CONTACTED,
    "pending": LeadState.PENDING,
    "followup": LeadState.PENDING,
    "qualified": LeadState.QUALIFIED,
    "test drive": LeadState.TEST_DRIVE,  # appears in leads_logs.new_status
    "booked": LeadState.BOOKED,
    "won": LeadState.WON,
    "booked-retail": LeadState.WON,
    "closed": LeadState.CLOSED,
    "closed_due_to_sale_elsewhere": LeadState.CLOSED,
    "lost": LeadState.LOST,
    "disqualified": LeadState.DISQUALIFIED,
    "unqualified": LeadState.DISQUALIFIED,
}
# Free-text statuses (`POST /cre/leads/unqualified` stored the reason as the status): by prefix.
LEGACY_PREFIXES: tuple[tuple[str, LeadState], ...] = (
    ("lost", LeadState.LOST),
    ("disqualified", LeadState.DISQUALIFIED),
    ("unqualified", LeadState.DISQUALIFIED),
)


def normalize_status(status: str | None) -> str:
    return (status or "").strip().lower()


def state_of(
    status: str | None,
    *,
    is_lost: bool | None = None,
    is_qualified: bool | None = None,
    test_drive: bool | None = None,
    booked: bool | None = None,
    retailed: bool | None = None,
) -> LeadState:
    """The one state of a legacy row (`leads_master` columns plus its `leads_qualification` flags).

    Precedence, strongest first: "IS_LOST" true (lost, or disqualified when the status says so); a
    status that ends the story (won, closed, lost, disqualified, by name or prefix); the funnel flags
    on a qualified lead (RETAILED > BOOKED > TEST_DRIVE); the status; `is_qualified`. Unknown free
    text is `contacted`: the legacy CRE tab "fresh called" is every status other than New.
    """
    text = normalize_status(status)
    named = LEGACY_STATUSES.get(text)
    if named is None:
        named = next((state for prefix, state in LEGACY_PREFIXES if text.startswith(prefix)), None)
    if is_lost:
        return LeadState.DISQUALIFIED if named is LeadState.DISQUALIFIED else LeadState.LOST
    if named in TERMINAL_STATES:
        assert named is not None
        return named
    qualified = bool(is_qualified) or named in QUALIFIED_FAMILY
    if qualified:
        if retailed:
            return LeadState.WON
        if booked or named is LeadState.BOOKED:
            return LeadState.BOOKED
        if test_drive or named is LeadState.TEST_DRIVE:
            return LeadState.TEST_DRIVE
        return LeadState.QUALIFIED
    return named if named is not None else LeadState.CONTACTED


@dataclass(frozen=True)
class LegacyColumns:
    """What leadhub writes for a state. A flag of None means "leave the stored value alone"."""

    status: str
    is_lost: bool | None  # the legacy app writes NULL, not false, for "not lost"
    is_qualified: bool | None
    test_drive: bool | None = None
    booked: bool | None = None
    retailed: bool | None = None


_LEGACY_COLUMNS: dict[LeadState, LegacyColumns] = {
    LeadState.NEW: LegacyColumns("New", None, False),
    LeadState.CONTACTED: LegacyColumns("Working", None, False),
    LeadState.PENDING: LegacyColumns("Pending", None, False),
    LeadState.QUALIFIED: LegacyColumns("Qualified", None, True),
    LeadState.TEST_DRIVE: LegacyColumns("Qualified", None, True, test_drive=True),
    LeadState.BOOKED: LegacyColumns("Booked", None, True, booked=True),
    LeadState.WON: LegacyColumns("Won", None, True, retailed=True),
    LeadState.CLOSED: LegacyColumns("Closed", None, None),
    LeadState.LOST: LegacyColumns("Lost", True, None),
    LeadState.DISQUALIFIED: LegacyColumns("Disqualified", True, None),
}


def legacy_columns(state: LeadState) -> LegacyColumns:
    """The legacy column values for a state, chosen so the old app's tabs show the lead where it belongs:
    `Working` lands in "fresh called", `Pending` in "pending", `is_qualified` in "qualified", `RETAILED`
    in "won", `"IS_LOST"` in "lost". `state_of(legacy_columns(s)) == s` for every state."""
    return _LEGACY_COLUMNS[state]


class Action(StrEnum):
    LOG_CALL = "log_call"
    SET_PENDING = "set_pending"
    QUALIFY = "qualify"
    RECORD_TEST_DRIVE = "record_test_drive"
    BOOK = "book"
    MARK_WON = "mark_won"
    CLOSE = "close"
    LOSE = "lose"
    DISQUALIFY = "disqualify"
    REOPEN = "reopen"


S, A = LeadState, Action
_WORKING = (S.NEW, S.CONTACTED, S.PENDING)
_QUALIFIED = (S.QUALIFIED, S.TEST_DRIVE, S.BOOKED)

# from-state x action -> to-state. Anything not listed is forbidden.
TRANSITIONS: dict[tuple[LeadState, Action], LeadState] = {
    **{(s, A.LOG_CALL): (S.CONTACTED if s is S.NEW else s) for s in (*_WORKING, *_QUALIFIED)},
    # On a qualified lead a follow-up is a reminder; the lead stays where it is in the funnel.
    **{(s, A.SET_PENDING): (S.PENDING if s in _WORKING else s) for s in (*_WORKING, *_QUALIFIED)},
    **{(s, A.QUALIFY): (S.QUALIFIED if s in _WORKING else s) for s in (*_WORKING, *_QUALIFIED)},
    (S.QUALIFIED, A.RECORD_TEST_DRIVE): S.TEST_DRIVE,
    (S.QUALIFIED, A.BOOK): S.BOOKED,
    (S.TEST_DRIVE, A.BOOK): S.BOOKED,
    # A sale needs a booking first, as the legacy retail did (an approved booking).
    (S.BOOKED, A.MARK_WON): S.WON,
    **{(s, A.CLOSE): S.CLOSED for s in (*_WORKING, *_QUALIFIED)},
    **{(s, A.LOSE): S.LOST for s in (*_WORKING, *_QUALIFIED)},
    # Disqualifying says it was never a prospect: not once a test drive or a booking happened.
    **{(s, A.DISQUALIFY): S.DISQUALIFIED for s in (*_WORKING, S.QUALIFIED)},
    # A won lead is not reopened: a new enquiry from the customer makes a new lead.
    **{(s, A.REOPEN): S.CONTACTED for s in (S.CLOSED, S.LOST, S.DISQUALIFIED)},
}
del S, A


class TransitionNotAllowed(LeadhubError):
    status_code = 409
    code = "transition_not_allowed"


def next_state(state: LeadState, action: Action) -> LeadState:
    """The state after `action`, or TransitionNotAllowed naming both."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is state)
        raise TransitionNotAllowed(
            f"cannot {action.value} a lead that is {state.value}"
            + (f" (allowed: {', '.join(allowed)})" if allowed else " (no action is allowed)"),
            state=state.value,
            action=action.value,
        ) from None


def is_open_state(state: LeadState) -> bool:
    return state not in TERMINAL_STATES
