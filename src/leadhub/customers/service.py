"""Find or create the customer for a phone number, race-safe on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadhub.customers.names import clean_email, clean_name, clean_text
from leadhub.db.dialect import upsert
from leadhub.db.models import Customer
from leadhub.db.types import utcnow
from leadhub.phones import mask, parse_phone

_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class CustomerMatch:
    phone: str  # E.164
    customer: Customer
    created: bool


def find_or_create_customer_by_phone(
    session: Session,
    raw_phone: str | None,
    full_name: str | None = None,
    city: str | None = None,
    email: str | None = None,
    *,
    region: str = "IN",
) -> CustomerMatch:
    """Return the customer owning `raw_phone`, creating it if none does.

    INSERT ... ON CONFLICT DO NOTHING, then SELECT: never select-then-insert, so two concurrent first
    enquiries from one number make one customer and neither fails. The row is then locked (PostgreSQL)
    for the rest of the transaction, so decisions about this customer's leads are serialised.

    Attributes: a missing value is filled, a non-empty one is never overwritten; placeholder names
    ("Knowlarity Lead 98...") never count as a name. Raises PhoneError when the phone is not valid.
    """
    phone = parse_phone(raw_phone, region).e164
    name, town, mail = clean_name(full_name), clean_text(city), clean_email(email)
    now = utcnow()
    insert_customer = (
        upsert(session, Customer)
        .values(
            phone_number_normalized=phone,
            full_name=name,
            city=town,
            email=mail,
            origin="intake",
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["phone_number_normalized"])
        .returning(Customer.id)
    )
    find_customer = (
        select(Customer)
        .where(Customer.phone_number_normalized == phone)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    for _ in range(_ATTEMPTS):
        inserted = session.execute(insert_customer).scalar_one_or_none()
        customer = session.execute(find_customer).scalar_one_or_none()
        if customer is not None:
            break
        # Under READ COMMITTED the row we conflicted with can vanish before we lock it (a concurrent
        # merge deleted it and gave its phone to another row we could not yet see): look again.
    else:
        raise RuntimeError(f"customer for {mask(phone)} kept moving; gave up after {_ATTEMPTS} attempts")
    if inserted is None:
        _fill_missing(customer, full_name=name, city=town, email=mail)
    return CustomerMatch(phone=phone, customer=customer, created=inserted is not None)


def _fill_missing(customer: Customer, *, full_name: str | None, city: str | None, email: str | None) -> None:
    changed = False
    if full_name and clean_name(customer.full_name) is None:
        customer.full_name, changed = full_name, True
    if city and clean_text(customer.city) is None:
        customer.city, changed = city, True
    if email and clean_text(customer.email) is None:
        customer.email, changed = email, True
    if changed:
        customer.updated_at = utcnow()
