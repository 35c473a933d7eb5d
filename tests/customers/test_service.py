from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadhub.customers.service import find_or_create_customer_by_phone
from leadhub.db.models import Customer
from leadhub.phones import PhoneError


def _count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Customer)).scalar_one()


def test_creates_then_finds_the_same_customer_in_every_format(session: Session) -> None:
    first = find_or_create_customer_by_phone(session, "09876543210", full_name="Asha Patel", city="Pune")
    assert first.created and first.phone == "+919876543210"
    assert first.customer.full_name == "Asha Patel" and first.customer.city == "Pune"
    for raw in ("9876543210", "+91 98765 43210", "919876543210", "0091-9876543210", "p:+919876543210"):
        again = find_or_create_customer_by_phone(session, raw)
        assert not again.created
        assert again.customer.id == first.customer.id
    assert _count(session) == 1


def test_fills_missing_attributes_but_never_overwrites(session: Session) -> None:
    created = find_or_create_customer_by_phone(session, "9876543210", full_name=None, city="Pune")
    assert created.customer.full_name is None
    filled = find_or_create_customer_by_phone(
        session, "+919876543210", full_name="Asha Patel", city="Mumbai", email="asha@example.com"
    )
    assert filled.customer.full_name == "Asha Patel"  # was missing: filled
    assert filled.customer.city == "Pune"  # was set: kept
    assert filled.customer.email == "asha@example.com"
    kept = find_or_create_customer_by_phone(session, "9876543210", full_name="Someone Else")
    assert kept.customer.full_name == "Asha Patel"


def test_placeholder_names_never_count_as_a_name(session: Session) -> None:
    match = find_or_create_customer_by_phone(session, "9876543210", full_name="Knowlarity Lead +919876543210")
    assert match.customer.full_name is None
    named = find_or_create_customer_by_phone(session, "9876543210", full_name="Asha Patel")
    assert named.customer.full_name == "Asha Patel"


def test_a_stored_placeholder_is_replaced_by_a_real_name(session: Session) -> None:
    # e.g. a customer the migration guide's SQL created from a Knowlarity placeholder
    session.add(Customer(phone_number_normalized="+919876543210", full_name="Knowlarity Lead 9876543210"))
    session.flush()
    match = find_or_create_customer_by_phone(session, "98765 43210", full_name="Asha Patel")
    assert not match.created
    assert match.customer.full_name == "Asha Patel"


@pytest.mark.parametrize("raw", [None, "", "98765", "not a phone", "98765432101"])
def test_invalid_phone_raises_and_creates_nothing(session: Session, raw: str | None) -> None:
    with pytest.raises(PhoneError):
        find_or_create_customer_by_phone(session, raw, full_name="Asha")
    assert _count(session) == 0
