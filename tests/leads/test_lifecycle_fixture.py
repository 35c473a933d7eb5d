"""The lifecycle on the realistic legacy fixture (../shared/legacy/fixture.sql): PostgreSQL only.

Every status spelling the fixture generates, with its flags, reads as one state; the SQL open-lead
clause agrees with that state on every row; and a migrated database has the seeded reasons.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from leadhub.db import migrate
from leadhub.db.models import Lead, LeadQualification, LeadReason
from leadhub.db.session import make_engine, make_session_factory
from leadhub.leads.lifecycle import TERMINAL_STATES, LeadState, state_of
from leadhub.leads.reasons import DEFAULT_REASONS
from leadhub.leads.status import open_lead_clause
from tests.conftest import SHARED, fresh_database, psql, requires_postgres

pytestmark = requires_postgres

# What fixture.sql writes for each status (its CASE expressions), and the state leadhub reads.
FIXTURE_STATES = {
    "New": LeadState.NEW,
    "Pending": LeadState.PENDING,
    "Qualified": {LeadState.QUALIFIED, LeadState.TEST_DRIVE},
    "Unqualified": LeadState.DISQUALIFIED,
    "Disqualified": LeadState.DISQUALIFIED,
    "Lost": LeadState.LOST,
    "fresh": LeadState.NEW,
    "Booked": LeadState.BOOKED,
    "Won": LeadState.WON,
    "Closed_due_to_sale_elsewhere": LeadState.CLOSED,
    "Lost - Price Concern": LeadState.LOST,
}


def test_every_fixture_row_has_one_state_and_the_open_clause_agrees(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        psql(url, "-v", "n=3000", "-v", "guide_backfill=0", "-f", str(SHARED / "legacy" / "fixture.sql"))
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=2)
        try:
            with make_session_factory(engine)() as s:
                open_ids = set(s.execute(select(Lead.id).where(open_lead_clause())).scalars())
                rows = s.execute(
                    select(Lead, LeadQualification)
                    .outerjoin(LeadQualification, LeadQualification.lead_id == Lead.id)
                    .order_by(Lead.id)
                ).all()
                seeded = {(r.kind, r.code, r.label) for r in s.execute(select(LeadReason)).scalars()}
        finally:
            engine.dispose()
    seen: dict[str, set[LeadState]] = {}
    for lead, qual in rows:
        state = state_of(
            lead.status,
            is_lost=lead.is_lost,
            is_qualified=lead.is_qualified,
            test_drive=qual.test_drive if qual else None,
            booked=qual.booked if qual else None,
            retailed=qual.retailed if qual else None,
        )
        seen.setdefault(lead.status or "", set()).add(state)
        assert (lead.id in open_ids) == (state not in TERMINAL_STATES), (lead.id, lead.status, state)
    assert set(seen) == set(FIXTURE_STATES)
    for status, states in seen.items():
        expected = FIXTURE_STATES[status]
        assert states <= (expected if isinstance(expected, set) else {expected}), status
    assert seeded == {(kind.value, code, label) for kind, code, label in DEFAULT_REASONS}
