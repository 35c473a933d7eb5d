"""The one intake path every channel calls: enquiry -> inbox row -> customer -> lead, in one transaction.

`ingest` records the normalised intake in the inbox (unique on source + external id), finds or
creates the customer by canonical phone, then creates a lead or attaches the enquiry to the
customer's open lead. A redelivered external id returns the first result and writes nothing. An
enquiry that cannot become a lead (invalid phone, unknown branch) is kept as a `failed` inbox row with
its reason and raw payload, and `replay` retries it later. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session

from leadhub.config import LeadPolicy
from leadhub.customers.names import clean_name
from leadhub.customers.service import find_or_create_customer_by_phone
from leadhub.db.dialect import dialect_name
from leadhub.db.models import (
    Branch,
    IntakeEvent,
    IntakeStatus,
    Lead,
    LeadLog,
    LeadSourceHistory,
    Source,
    SourceChannel,
)
from leadhub.db.types import utcnow
from leadhub.integrations import inbox
from leadhub.leads.status import NEW, open_lead_clause
from leadhub.phones import PhoneError, mask, parse_phone

log = logging.getLogger(__name__)
_LEADS = cast(Table, Lead.__table__)


class Channel(StrEnum):
    KNOWLARITY = "knowlarity"
    META = "meta"
    WALK_IN = "walk_in"
    WEBSITE = "website"
    STAFF = "staff"
    IMPORT = "import"


# The legacy `sources` row each channel's leads carry: (display_name, source_type), the pair the
# legacy app looks sources up by (../shared/legacy/legacy-app.md §1.3).
LEGACY_SOURCES: dict[Channel, tuple[str, str]] = {
    Channel.KNOWLARITY: ("Knowlarity", "knowlarity_call"),
    Channel.META: ("Meta", "meta_form"),
    Channel.WALK_IN: ("Walk-in", "walk_in"),
    Channel.WEBSITE: ("Website", "web_form"),
    Channel.STAFF: ("Staff", "manual"),
    Channel.IMPORT: ("Import", "csv_import"),
}


class IntakeOutcome(StrEnum):
    CREATED = "created"  # a new lead
    ATTACHED = "attached"  # added to the customer's open lead
    DUPLICATE = "duplicate"  # this external id was delivered before; nothing written
    FAILED = "failed"  # kept in the inbox with the reason


@dataclass(frozen=True, slots=True)
class Intake:
    """An enquiry from any channel, normalised to what leadhub needs."""

    source: Channel
    phone: str | None
    external_id: str | None = None
    name: str | None = None
    city: str | None = None
    email: str | None = None
    branch_id: int | None = None
    occurred_at: datetime | None = None
    raw_payload: Any = None
    # Attributes beyond the legacy columns (form, ad, campaign, ...): kept with the event.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("raw_payload")  # stored once, in its own column
        data["source"] = self.source.value
        data["occurred_at"] = self.occurred_at.isoformat() if self.occurred_at else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], raw_payload: Any = None) -> Intake:
        when = data.get("occurred_at")
        return cls(
            source=Channel(data["source"]),
            phone=data.get("phone"),
            external_id=data.get("external_id"),
            name=data.get("name"),
            city=data.get("city"),
            email=data.get("email"),
            branch_id=data.get("branch_id"),
            occurred_at=datetime.fromisoformat(when) if when else None,
            raw_payload=raw_payload,
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True, slots=True)
class IntakeResult:
    status: IntakeOutcome
    event_id: int
    lead_id: int | None = None
    customer_id: int | None = None
    customer_created: bool = False
    phone: str | None = None  # E.164
    reason: str | None = None


class IntakeRejected(Exception):
    """A reason this enquiry cannot become a lead now; recorded on the inbox row."""


def ingest(
    session: Session,
    intake: Intake,
    *,
    region: str = "IN",
    policy: LeadPolicy = LeadPolicy.ATTACH,
) -> IntakeResult:
    """Record and process one enquiry. Flushes, never commits: the caller's unit of work does."""
    external_id = intake.external_id or f"auto:{uuid.uuid4().hex}"
    event_id = inbox.record_event(
        session,
        source=intake.source.value,
        external_id=external_id,
        intake=intake.to_json(),
        raw_payload=intake.raw_payload,
    )
    if event_id is None:
        first = inbox.find_event(session, source=intake.source.value, external_id=external_id)
        assert first is not None  # the conflicting row is committed, or ON CONFLICT would have waited
        return IntakeResult(
            status=IntakeOutcome.DUPLICATE,
            event_id=first.id,
            lead_id=first.lead_id,
            customer_id=first.customer_id,
            reason=first.reason,
        )
    return process_event(session, event_id, intake, external_id=external_id, region=region, policy=policy)


def process_event(
    session: Session,
    event_id: int,
    intake: Intake,
    *,
    external_id: str,
    region: str = "IN",
    policy: LeadPolicy = LeadPolicy.ATTACH,
) -> IntakeResult:
    """Turn a recorded inbox event into a lead, and record the outcome on the event."""
    try:
        result = _make_lead(session, event_id, intake, external_id=external_id, region=region, policy=policy)
    except IntakeRejected as rejected:
        reason = str(rejected)
        inbox.finish_event(session, event_id, status=IntakeStatus.FAILED, reason=reason)
        log.warning("intake %s/%s failed: %s (phone %s)", intake.source, event_id, reason, mask(intake.phone))
        return IntakeResult(status=IntakeOutcome.FAILED, event_id=event_id, reason=reason)
    inbox.finish_event(
        session,
        event_id,
        status=IntakeStatus.PROCESSED,
        outcome=result.status.value,
        lead_id=result.lead_id,
        customer_id=result.customer_id,
    )
    return result


def replay(
    session: Session,
    *,
    event_ids: Sequence[int] | None = None,
    phone: str | None = None,
    region: str = "IN",
    policy: LeadPolicy = LeadPolicy.ATTACH,
    limit: int = 1000,
) -> list[IntakeResult]:
    """Process failed or pending events again (after a fix, a library upgrade, or with a corrected phone)."""
    query = (
        select(IntakeEvent)
        .where(IntakeEvent.status != IntakeStatus.PROCESSED.value, IntakeEvent.intake.is_not(None))
        .order_by(IntakeEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if event_ids is not None:
        query = query.where(IntakeEvent.id.in_(event_ids))
    results = []
    for event in session.execute(query).scalars().all():
        intake = Intake.from_json(event.intake, event.raw_payload)
        if phone is not None:
            intake = replace(intake, phone=phone)
            event.intake = intake.to_json()
        results.append(
            process_event(
                session, event.id, intake, external_id=event.external_id, region=region, policy=policy
            )
        )
    return results


def _make_lead(
    session: Session,
    event_id: int,
    intake: Intake,
    *,
    external_id: str,
    region: str,
    policy: LeadPolicy,
) -> IntakeResult:
    try:
        parsed = parse_phone(intake.phone, region)
    except PhoneError as error:
        raise IntakeRejected(str(error)) from error
    if intake.branch_id is not None and session.get(Branch, intake.branch_id) is None:
        raise IntakeRejected(f"unknown branch id {intake.branch_id}")
    match = find_or_create_customer_by_phone(
        session, parsed.e164, intake.name, intake.city, intake.email, region=region
    )
    customer = match.customer
    source_id = resolve_source_id(session, intake.source)
    now = utcnow()

    lead = None
    if policy is LeadPolicy.ATTACH and not match.created:
        lead = _open_lead(session, customer.id, intake.branch_id)
    if lead is not None:
        _attach(session, lead, intake, source_id=source_id, external_id=external_id, event_id=event_id)
        lead_id, status = lead.id, IntakeOutcome.ATTACHED
    else:
        lead_id = session.execute(
            insert(_LEADS)
            .values(
                full_name=clean_name(intake.name) or customer.full_name,
                phone_number_normalized=parsed.e164,
                alternate_phone_number=parsed.extra[0] if parsed.extra else None,
                source_id=source_id,
                external_lead_id=intake.external_id,
                status=NEW,
                total_attempts=0,
                is_qualified=False,
                IS_LOST=None,
                raw_payload=intake.raw_payload,
                branch_id=intake.branch_id,
                customer_id=customer.id,
                enquired_at=intake.occurred_at or now,
                created_at=now,
                updated_at=now,
            )
            .returning(_LEADS.c.id)
        ).scalar_one()
        status = IntakeOutcome.CREATED
    return IntakeResult(
        status=status,
        event_id=event_id,
        lead_id=lead_id,
        customer_id=customer.id,
        customer_created=match.created,
        phone=parsed.e164,
    )


def _open_lead(session: Session, customer_id: int, branch_id: int | None) -> Lead | None:
    """The customer's open lead at the branch; with no branch, their most recent open lead anywhere."""
    query = select(Lead).where(Lead.customer_id == customer_id, open_lead_clause())
    if branch_id is not None:
        query = query.where(Lead.branch_id == branch_id)
    recent = func.coalesce(Lead.enquired_at, Lead.created_at)
    # Lock the lead as the lifecycle services do, so an enquiry never attaches to a lead that a
    # concurrent transaction is closing: PostgreSQL re-checks the open rule on the locked row.
    query = query.order_by(recent.desc(), Lead.id.desc()).limit(1).with_for_update(of=Lead)
    return session.execute(query).scalar_one_or_none()


def _attach(
    session: Session, lead: Lead, intake: Intake, *, source_id: int, external_id: str, event_id: int
) -> None:
    now = utcnow()
    lead.updated_at = now
    if lead.source_id != source_id:
        session.add(
            LeadSourceHistory(
                lead_id=lead.id,
                source_id=source_id,
                external_id=intake.external_id or external_id,
                raw_payload=intake.raw_payload,
                received_at=now,
                is_primary=False,
            )
        )
    session.add(
        LeadLog(
            lead_id=lead.id,
            old_status=lead.status,
            new_status=lead.status,
            remarks=f"Repeat enquiry via {intake.source.value}",
            metadata_={
                "action": "repeat_enquiry",
                "source": intake.source.value,
                "intake_event_id": event_id,
            },
            created_at=now,
        )
    )
    session.flush()


def resolve_source_id(session: Session, channel: Channel) -> int:
    """The legacy `sources` row for a channel, found (lowest id of its pair) or created once."""
    mapped = _mapped_source(session, channel)
    if mapped is not None:
        return mapped
    if dialect_name(session) == "postgresql":
        # `sources` has no unique key to conflict on; serialise the rare first creation instead.
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('leadhub.source_channels'))"))
        mapped = _mapped_source(session, channel)
        if mapped is not None:
            return mapped
    display_name, source_type = LEGACY_SOURCES[channel]
    source_id = session.execute(
        select(Source.id)
        .where(Source.display_name == display_name, Source.source_type == source_type)
        .order_by(Source.id)
        .limit(1)
    ).scalar_one_or_none()
    if source_id is None:
        source = Source(display_name=display_name, source_type=source_type, created_at=utcnow())
        session.add(source)
        session.flush()
        source_id = source.id
    session.add(SourceChannel(channel=channel.value, source_id=source_id))
    session.flush()
    return source_id


def _mapped_source(session: Session, channel: Channel) -> int | None:
    return session.execute(
        select(SourceChannel.source_id).where(SourceChannel.channel == channel.value)
    ).scalar_one_or_none()
