"""Reason master data: seeded by the migration, managed by admins, chosen by code."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.db import migrate
from leadhub.db.models import LeadReason
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.errors import NotFoundError
from leadhub.leads.reasons import (
    DEFAULT_REASONS,
    InvalidReasonError,
    ReasonKind,
    add_reason,
    list_reasons,
    require_reason,
    seed_default_reasons,
    set_reason_active,
)
from tests.conftest import fresh_database


def test_the_migration_seeds_the_default_reasons_once(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=1)
        try:
            factory = make_session_factory(engine)
            with session_scope(factory) as s:
                s.execute(select(LeadReason).where(LeadReason.code == "RNR")).scalar_one().label = "Edited"
            migrate.upgrade(url)  # a second run neither duplicates nor overwrites
            with factory() as s:
                rows = s.execute(select(LeadReason.kind, LeadReason.code, LeadReason.label)).all()
        finally:
            engine.dispose()
    expected = {(k.value, c, "Edited" if c == "RNR" else label) for k, c, label in DEFAULT_REASONS}
    assert len(rows) == len(DEFAULT_REASONS)
    assert {tuple(r) for r in rows} == expected


def test_admins_add_and_deactivate_reasons(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        seed_default_reasons(s)
        seed_default_reasons(s)  # idempotent
        add_reason(s, kind=ReasonKind.LOST, code="ColourUnavailable", label="Colour not available")
    with session_scope(factory) as s:
        assert require_reason(s, ReasonKind.LOST, "ColourUnavailable").label == "Colour not available"
        set_reason_active(s, kind=ReasonKind.LOST, code="ColourUnavailable", active=False)
    with factory() as s:
        active = [r.code for r in list_reasons(s, kind=ReasonKind.LOST)]
        every = [r.code for r in list_reasons(s, kind=ReasonKind.LOST, include_inactive=True)]
        assert "ColourUnavailable" not in active and "ColourUnavailable" in every
        assert len(every) == sum(1 for k, _, _ in DEFAULT_REASONS if k is ReasonKind.LOST) + 1


@pytest.mark.parametrize(
    ("code", "label", "message"),
    [("PriceConcern", "Again", "already exists"), ("  ", "x", "needs a code and a label")],
)
def test_a_duplicate_or_blank_reason_is_refused(
    factory: sessionmaker[Session], code: str, label: str, message: str
) -> None:
    with session_scope(factory) as s:
        seed_default_reasons(s)
    with factory() as s, pytest.raises(InvalidReasonError, match=message):
        add_reason(s, kind=ReasonKind.LOST, code=code, label=label)


def test_deactivating_an_unknown_reason_is_not_found(factory: sessionmaker[Session]) -> None:
    with factory() as s, pytest.raises(NotFoundError, match="no lost reason with code 'Nope'"):
        set_reason_active(s, kind=ReasonKind.LOST, code="Nope", active=False)
