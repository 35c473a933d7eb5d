"""The intake inbox: every enquiry recorded once per (source, external_id), with its raw payload.

Recording is INSERT ... ON CONFLICT DO NOTHING on that unique key, so a redelivery (a provider retry,
a webhook and a poll of the same call, five concurrent sends) finds the first row instead of writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from leadhub.db.dialect import upsert
from leadhub.db.models import IntakeEvent, IntakeStatus
from leadhub.db.types import utcnow

_EVENTS = cast(Table, IntakeEvent.__table__)


def record_event(
    session: Session,
    *,
    source: str,
    external_id: str,
    intake: dict[str, Any] | None,
    raw_payload: Any,
    status: IntakeStatus = IntakeStatus.PENDING,
    reason: str | None = None,
) -> int | None:
    """Insert the event and return its id, or None when (source, external_id) was already recorded."""
    # Core statements on the table (not the ORM bulk path): this runs once per enquiry.
    return session.execute(
        upsert(session, _EVENTS)
        .values(
            source=source,
            external_id=external_id,
            status=status.value,
            reason=reason,
            intake=intake,
            raw_payload=raw_payload,
            attempts=0,
            received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(_EVENTS.c.id)
    ).scalar_one_or_none()


def find_event(session: Session, *, source: str, external_id: str) -> IntakeEvent | None:
    return session.execute(
        select(IntakeEvent).where(IntakeEvent.source == source, IntakeEvent.external_id == external_id)
    ).scalar_one_or_none()


def finish_event(
    session: Session,
    event_id: int,
    *,
    status: IntakeStatus,
    outcome: str | None = None,
    reason: str | None = None,
    lead_id: int | None = None,
    customer_id: int | None = None,
    intake: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": status.value,
        "outcome": outcome,
        "reason": reason,
        "lead_id": lead_id,
        "customer_id": customer_id,
        "processed_at": utcnow(),
        "attempts": _EVENTS.c.attempts + 1,
    }
    if intake is not None:
        values["intake"] = intake
    session.execute(update(_EVENTS).where(_EVENTS.c.id == event_id).values(**values))


def list_events(
    session: Session,
    *,
    statuses: Sequence[IntakeStatus] = (IntakeStatus.FAILED, IntakeStatus.PENDING),
    source: str | None = None,
    limit: int = 100,
    after_id: int = 0,
) -> list[IntakeEvent]:
    query = (
        select(IntakeEvent)
        .where(IntakeEvent.status.in_([s.value for s in statuses]), IntakeEvent.id > after_id)
        .order_by(IntakeEvent.id)
        .limit(limit)
    )
    if source is not None:
        query = query.where(IntakeEvent.source == source)
    return list(session.execute(query).scalars())
