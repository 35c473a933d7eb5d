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
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, TextClause, func, insert, select, text, update
from sqlalchemy.orm import Session

from leadhub.config import LeadPolicy
from leadhub.customers.names import clean_email, clean_name, clean_text
from leadhub.customers.service import find_or_create_customer_by_phone
from leadhub.db.dialect import dialect_name
from leadhub.db.models import (
    Branch,
    Call,
    IntakeEvent,
    IntakeStatus,
    Lead,
    LeadLog,
    LeadSourceHistory,
    Source,
    SourceChannel,
)
from leadhub.db.types import json_dumps, utcnow
from leadhub.integrations import inbox
from leadhub.leads.assignment import assign_new_lead
from leadhub.leads.status import NEW, open_lead_clause
from leadhub.phones import PhoneError, mask, parse_phone

log = logging.getLogger(__name__)
_LEADS = cast(Table, Lead.__table__)
_CALLS = cast(Table, Call.__table__)


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
        # raw_payload is stored once, in its own column. (Built by hand: asdict() deep-copies, and
        # this runs on every webhook.)
        return {
            "source": self.source.value,
            "phone": self.phone,
            "external_id": self.external_id,
            "name": self.name,
            "city": self.city,
            "email": self.email,
            "branch_id": self.branch_id,
            "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
            "extra": dict(self.extra),
        }

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
    assigned_to: int | None = None  # a new lead's owner, when a rule assigned it

    @classmethod
    def from_answer(cls, answer: dict[str, Any]) -> IntakeResult:
        """From the JSON answer of the server-side functions (revision 0006)."""
        return cls(
            status=IntakeOutcome(answer["status"]),
            event_id=int(answer["event_id"]),
            lead_id=answer.get("lead_id"),
            customer_id=answer.get("customer_id"),
            customer_created=bool(answer.get("customer_created", False)),
            phone=answer.get("phone"),
            reason=answer.get("reason"),
            assigned_to=answer.get("assigned_to"),
        )


class IntakeRejected(Exception):
    """A reason this enquiry cannot become a lead now; recorded on the inbox row."""


@dataclass(frozen=True, slots=True)
class IntakeError:
    """A batch member that raised (a database error, not a rejection); nothing of it was kept."""

    error: str


# --- the server-side path (PostgreSQL; functions of revision 0006)

_INGEST = text("SELECT leadhub_ingest(CAST(:p AS jsonb))")
_INGEST_MANY = text("SELECT leadhub_ingest_many(CAST(:p AS jsonb))")
_PROCESS = text("SELECT leadhub_process_event(:event_id, CAST(:p AS jsonb))")


def _use_server(session: Session, server_side: bool | None) -> bool:
    if server_side is None:
        return dialect_name(session) == "postgresql"
    if server_side and dialect_name(session) != "postgresql":
        raise ValueError("server-side intake needs PostgreSQL")
    return server_side


def server_payload(intake: Intake, external_id: str, *, region: str, policy: LeadPolicy) -> dict[str, Any]:
    """What the server-side functions need: the phone canonicalised and the names cleaned here, in
    Python, by the same code the Python path uses."""
    phone = alt_phone = reject = None
    try:
        parsed = parse_phone(intake.phone, region)
        phone, alt_phone = parsed.e164, (parsed.extra[0] if parsed.extra else None)
    except PhoneError as error:
        reject = str(error)
    display_name, source_type = LEGACY_SOURCES[intake.source]
    return {
        "source": intake.source.value,
        "external_id": external_id,
        "external_lead_id": intake.external_id,
        "intake": intake.to_json(),
        "raw_payload": intake.raw_payload,
        "phone": phone,
        "alt_phone": alt_phone,
        "reject": reject,
        "name": clean_name(intake.name),
        "city": clean_text(intake.city),
        "email": clean_email(intake.email),
        "branch_id": intake.branch_id,
        "occurred_at": intake.occurred_at.isoformat() if intake.occurred_at else None,
        "policy": policy.value,
        "source_name": display_name,
        "source_type": source_type,
    }


def inbox_key(intake: Intake, namespace: str | None = None) -> str:
    """The enquiry's key in the inbox, unique per source: the sender's id, within the sender's
    namespace when one is given (two API callers may both send id "123"); a generated one without."""
    if intake.external_id is None:
        return f"auto:{uuid.uuid4().hex}"
    return f"{namespace}:{intake.external_id}" if namespace else intake.external_id


def _ingest_payload(
    intake: Intake, *, region: str, policy: LeadPolicy, claim_pending: bool, namespace: str | None = None
) -> dict[str, Any]:
    """`leadhub_ingest`'s document for one enquiry (an enquiry without an id gets a generated one)."""
    external_id = inbox_key(intake, namespace)
    payload = server_payload(intake, external_id, region=region, policy=policy)
    payload["claim_pending"] = claim_pending
    return payload


def _run_server(
    session: Session, statement: TextClause, params: dict[str, Any], intake: Intake
) -> IntakeResult:
    session.flush()  # the function must see what the unit of work holds
    return _result(session.execute(statement, params).scalar_one(), intake)


def _result(answer: dict[str, Any], intake: Intake) -> IntakeResult:
    result = IntakeResult.from_answer(answer)
    if result.status is IntakeOutcome.FAILED:
        log.warning("intake %s/%s failed: %s (phone %s)", intake.source, result.event_id, result.reason,
                    mask(intake.phone))  # fmt: skip
    return result


def ingest(
    session: Session,
    intake: Intake,
    *,
    region: str = "IN",
    policy: LeadPolicy = LeadPolicy.ATTACH,
    claim_pending: bool = False,
    server_side: bool | None = None,
    namespace: str | None = None,
) -> IntakeResult:
    """Record and process one enquiry. Flushes, never commits: the caller's unit of work does.

    `claim_pending`: an event recorded earlier but still pending (a Meta webhook waiting for its
    fetch) is processed now with this intake instead of being answered as a duplicate.
    `namespace`: whose ids `intake.external_id` are (the API caller), for the inbox key only; the
    lead keeps the sender's id as `external_lead_id`.
    On PostgreSQL the work runs server-side (`leadhub_ingest`, revision 0006) unless `server_side`
    is False; the rule is the same, proven by tests/leads/test_server_side.py.
    """
    if _use_server(session, server_side):
        payload = _ingest_payload(
            intake, region=region, policy=policy, claim_pending=claim_pending, namespace=namespace
        )
        return _run_server(session, _INGEST, {"p": json_dumps(payload)}, intake)
    external_id = inbox_key(intake, namespace)
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
        if claim_pending and first.status == IntakeStatus.PENDING.value:
            session.refresh(first, with_for_update=True)
            if first.status == IntakeStatus.PENDING.value:
                first.intake = intake.to_json()
                session.flush()
                return process_event(session, first.id, intake, external_id=external_id, region=region,
                                     policy=policy, server_side=False)  # fmt: skip
        return IntakeResult(
            status=IntakeOutcome.DUPLICATE,
            event_id=first.id,
            lead_id=first.lead_id,
            customer_id=first.customer_id,
            reason=first.reason,
        )
    return process_event(session, event_id, intake, external_id=external_id, region=region, policy=policy,
                         server_side=False)  # fmt: skip


def ingest_many(
    session: Session,
    intakes: Sequence[Intake],
    *,
    region: str = "IN",
    policy: LeadPolicy = LeadPolicy.ATTACH,
    claim_pending: bool = False,
    server_side: bool | None = None,
) -> list[IntakeResult | IntakeError]:
    """`ingest` for a batch (a sync page). Each enquiry is isolated: one that raises is answered with
    an IntakeError and the others are kept. On PostgreSQL the batch is one round trip."""
    if not intakes:
        return []
    if _use_server(session, server_side):
        payloads = [
            _ingest_payload(i, region=region, policy=policy, claim_pending=claim_pending) for i in intakes
        ]
        session.flush()
        answers = session.execute(_INGEST_MANY, {"p": json_dumps(payloads)}).scalar_one()
        results: list[IntakeResult | IntakeError] = []
        for intake, answer in zip(intakes, answers, strict=True):
            if "error" in answer:
                results.append(IntakeError(answer["error"]))
            else:
                results.append(_result(answer, intake))
        return results
    out: list[IntakeResult | IntakeError] = []
    for intake in intakes:
        savepoint = session.begin_nested()
        try:
            result = ingest(session, intake, region=region, policy=policy, claim_pending=claim_pending,
                            server_side=False)  # fmt: skip
            savepoint.commit()
        except Exception as error:  # isolate the batch's members, as the server-side loop does
            savepoint.rollback()
            out.append(IntakeError(f"{type(error).__name__}: {error}"))
            continue
        out.append(result)
    return out


def process_event(
    session: Session,
    event_id: int,
    intake: Intake,
    *,
    external_id: str,
    region: str = "IN",
    policy: LeadPolicy = LeadPolicy.ATTACH,
    server_side: bool | None = None,
) -> IntakeResult:
    """Turn a recorded inbox event into a lead, and record the outcome on the event."""
    if _use_server(session, server_side):
        payload = server_payload(intake, external_id, region=region, policy=policy)
        return _run_server(session, _PROCESS, {"event_id": event_id, "p": json_dumps(payload)}, intake)
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
    server_side: bool | None = None,
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
        result = process_event(session, event.id, intake, external_id=event.external_id, region=region,
                               policy=policy, server_side=server_side)  # fmt: skip
        if result.lead_id is not None:
            # A call kept as failed (bad caller number) and now replayed learns its lead.
            session.execute(
                update(_CALLS)
                .where(_CALLS.c.intake_event_id == event.id, _CALLS.c.lead_id.is_(None))
                .values(lead_id=result.lead_id, customer_id=result.customer_id, customer_phone=result.phone)
            )
        results.append(result)
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
    assignment = None
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
        assignment = assign_new_lead(session, lead_id=lead_id, customer_id=customer.id,
                                     channel=intake.source.value, branch_id=intake.branch_id)  # fmt: skip
    return IntakeResult(
        status=status,
        event_id=event_id,
        lead_id=lead_id,
        customer_id=customer.id,
        customer_created=match.created,
        phone=parsed.e164,
        assigned_to=assignment.user_id if assignment else None,
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
