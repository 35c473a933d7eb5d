"""`state_clause(state)` in SQL selects exactly the rows `state_of` puts in that state, over every legacy
row shape: each status spelling (names, prefixes, free text, case and spaces), each "IS_LOST" and
is_qualified value, and qualification rows with and without funnel flags (the latest row counts)."""

from __future__ import annotations

import itertools

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadhub.db.models import Lead, LeadQualification
from leadhub.leads.lifecycle import LEGACY_STATUSES, LeadState, state_of
from leadhub.leads.status import state_clause

STATUSES = [None, *LEGACY_STATUSES, " Qualified ", "WON", "Lost - price", "lost_to_competitor",
            "Disqualified: spam", "unqualified budget", "Called back", "Interested"]  # fmt: skip
FLAGS = [None, (None, None, None), (True, None, None), (None, True, None), (True, True, None), (None, None, True),
         (False, False, False)]  # fmt: skip


def test_every_state_selects_exactly_its_rows(session: Session) -> None:
    expected: dict[int, LeadState] = {}
    for status, lost, qualified, flags in itertools.product(
        STATUSES, [None, False, True], [None, False, True], FLAGS
    ):
        lead = Lead(status=status, is_lost=lost, is_qualified=qualified, total_attempts=0)
        session.add(lead)
        session.flush()
        td = booked = retailed = None
        if flags is not None:
            # an older row that says the opposite: only the latest row counts
            session.add(LeadQualification(lead_id=lead.id, test_drive=True, booked=True, retailed=True))
            td, booked, retailed = flags
            session.add(LeadQualification(lead_id=lead.id, test_drive=td, booked=booked, retailed=retailed))
        expected[lead.id] = state_of(status, is_lost=lost, is_qualified=qualified, test_drive=td, booked=booked,
                                     retailed=retailed)  # fmt: skip
    session.flush()
    seen: dict[int, LeadState] = {}
    for state in LeadState:
        for lead_id in session.execute(select(Lead.id).where(state_clause(state))).scalars():
            assert lead_id not in seen, f"lead {lead_id} is both {seen[lead_id]} and {state}"
            seen[lead_id] = state
    wrong = {i: (seen.get(i), expected[i]) for i in expected if seen.get(i) is not expected[i]}
    assert not wrong, list(wrong.items())[:10]
    assert set(expected.values()) == set(LeadState)  # the shapes reach every state
