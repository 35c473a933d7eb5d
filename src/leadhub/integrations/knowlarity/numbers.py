"""Virtual numbers: which branch (and optionally which source or campaign) a Knowlarity number stands for."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from leadhub.db.models import Branch, KnowlarityNumber, Source
from leadhub.errors import NotFoundError, ValidationFailed
from leadhub.phones import PhoneError, parse_phone


def canonical_number(raw: str | None, *, region: str = "IN") -> str | None:
    """The E.164 form of a virtual number, or None when it does not parse (then it cannot be mapped)."""
    try:
        return parse_phone(raw, region).e164
    except PhoneError:
        return None


def add_number(
    session: Session,
    *,
    number: str,
    branch_id: int | None,
    source_id: int | None = None,
    campaign: str | None = None,
    label: str | None = None,
    region: str = "IN",
) -> KnowlarityNumber:
    """Map a number (replacing an earlier mapping of it)."""
    canonical = canonical_number(number, region=region)
    if canonical is None:
        raise ValidationFailed(f"{number!r} is not a phone number")
    if branch_id is not None and session.get(Branch, branch_id) is None:
        raise NotFoundError(f"no branch with id {branch_id}")
    if source_id is not None and session.get(Source, source_id) is None:
        raise NotFoundError(f"no source with id {source_id}")
    row = session.get(KnowlarityNumber, canonical)
    if row is None:
        row = KnowlarityNumber(number=canonical)
        session.add(row)
    row.branch_id, row.source_id, row.campaign, row.label = branch_id, source_id, campaign, label
    session.flush()
    return row


def list_numbers(session: Session) -> list[KnowlarityNumber]:
    return list(session.execute(select(KnowlarityNumber).order_by(KnowlarityNumber.number)).scalars())


def remove_number(session: Session, *, number: str, region: str = "IN") -> bool:
    canonical = canonical_number(number, region=region) or number
    if session.get(KnowlarityNumber, canonical) is None:
        return False
    session.execute(delete(KnowlarityNumber).where(KnowlarityNumber.number == canonical))
    return True
