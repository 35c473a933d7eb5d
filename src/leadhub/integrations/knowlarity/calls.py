"""`ingest_call`: one Knowlarity call, from either entrance, through the one intake path.

The inbox key is ("knowlarity", call uuid), so a call pushed five times, or pushed and then polled,
is processed once; the `calls` row is unique on the uuid as well, and a later delivery only fills
what the first one lacked (the poll usually knows the agent and the recording). A missed call opens
a callback task on its lead; an answered call with the same customer closes the tasks opened by
calls before it. Everything here flushes; the caller commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, bindparam, or_, select, text, update
from sqlalchemy.orm import Session

from leadhub.config import LeadPolicy
from leadhub.db.dialect import dialect_name, upsert
from leadhub.db.fastpath import StatementPool
from leadhub.db.models import Call, CallbackStatus, CallbackTask, KnowlarityNumber, Lead
from leadhub.db.types import UTCDateTime, json_dumps, utcnow
from leadhub.integrations.knowlarity.numbers import canonical_number
from leadhub.integrations.knowlarity.payloads import CallRecord
from leadhub.leads.intake import Channel, Intake, IntakeOutcome, IntakeResult, ingest, server_payload
from leadhub.phones import mask

log = logging.getLogger(__name__)

_CALLS: Table = Call.__table__  # type: ignore[assignment]
_TASKS: Table = CallbackTask.__table__  # type: ignore[assignment]
_LEADS: Table = Lead.__table__  # type: ignore[assignment]
_NUMBERS: Table = KnowlarityNumber.__table__  # type: ignore[assignment]
_NUMBER = select(_NUMBERS.c.branch_id, _NUMBERS.c.source_id, _NUMBERS.c.campaign).where(
    _NUMBERS.c.number == bindparam("number")
)
_ANSWERED_SINCE = (
    select(_CALLS.c.id)
    .where(
        _CALLS.c.customer_id == bindparam("customer_id"),
        _CALLS.c.answered.is_(True),
        _CALLS.c.started_at >= bindparam("since", type_=UTCDateTime()),
    )
    .limit(1)
)
_FOLLOW_UP = (
    update(_LEADS)
    .where(
        _LEADS.c.id == bindparam("b_lead"),
        or_(
            _LEADS.c.next_followup_at.is_(None),
            _LEADS.c.next_followup_at > bindparam("due", type_=UTCDateTime()),
        ),
    )
    .values(next_followup_at=bindparam("due", type_=UTCDateTime()))
)
_CLOSE_TASKS = (
    update(_TASKS)
    .where(
        _TASKS.c.customer_id == bindparam("b_customer"),
        _TASKS.c.status == CallbackStatus.OPEN.value,
        _TASKS.c.missed_at <= bindparam("answered_at", type_=UTCDateTime()),
    )
    .values(
        status=CallbackStatus.DONE.value,
        closed_by_call_id=bindparam("closer"),
        closed_at=bindparam("now", type_=UTCDateTime()),
    )
)


@dataclass(frozen=True, slots=True)
class CallIngest:
    intake: IntakeResult
    call_id: int | None  # None: the database refused a value of the call (revision 0014), nothing stored
    number_mapped: bool

    @property
    def status(self) -> IntakeOutcome:
        return self.intake.status


def ingest_call(
    session: Session,
    call: CallRecord,
    *,
    region: str = "IN",
    policy: LeadPolicy = LeadPolicy.ATTACH,
    callback_sla: timedelta = timedelta(minutes=30),
    server_side: bool | None = None,
) -> CallIngest:
    """One call through the shared intake; on PostgreSQL in one round trip (`leadhub_ingest_call`,
    revision 0006) unless `server_side` is False. The Python body below is the same rule."""
    if server_side is None:
        server_side = dialect_name(session) == "postgresql"
    if server_side:
        return _ingest_call_server(session, call, region=region, policy=policy, callback_sla=callback_sla)
    virtual_number = canonical_number(call.virtual_number, region=region)
    mapping = session.execute(_NUMBER, {"number": virtual_number}).first() if virtual_number else None
    branch_id = mapping.branch_id if mapping else None
    intake = _call_intake(call, virtual_number, branch_id=branch_id,
                          mapped={"needs_branch": branch_id is None, "campaign": mapping.campaign if mapping else None})  # fmt: skip
    result = ingest(session, intake, region=region, policy=policy)
    if result.status is IntakeOutcome.CREATED and mapping is not None and mapping.source_id is not None:
        # The number stands for a particular source (a campaign's number): the new lead carries it.
        session.execute(update(Lead).where(Lead.id == result.lead_id).values(source_id=mapping.source_id))
    call_id = _store_call(session, call, result, mapped=branch_id is not None, region=region)
    if result.status in (IntakeOutcome.CREATED, IntakeOutcome.ATTACHED):
        assert result.lead_id is not None and result.customer_id is not None
        if call.answered:
            _close_callbacks(session, call, call_id=call_id, customer_id=result.customer_id)
        else:
            _open_callback(session, call, call_id=call_id, lead_id=result.lead_id,
                           customer_id=result.customer_id, sla=callback_sla)  # fmt: skip
    if branch_id is None and result.status is IntakeOutcome.CREATED:
        log.debug("knowlarity call %s to unmapped number %s: lead %s needs a branch",
                 call.call_uuid, mask(call.virtual_number), result.lead_id)  # fmt: skip
    return CallIngest(intake=result, call_id=call_id, number_mapped=branch_id is not None)


_INGEST_CALL = text("SELECT leadhub_ingest_call(CAST(:p AS jsonb))")


def _ingest_call_server(
    session: Session, call: CallRecord, *, region: str, policy: LeadPolicy, callback_sla: timedelta
) -> CallIngest:
    """The call as one statement in the session's unit of work."""
    payload = call_payload(call, region=region, policy=policy, callback_sla=callback_sla)
    session.flush()
    return call_result(session.execute(_INGEST_CALL, {"p": payload}).scalar_one())


INGEST_CALL_SQL = "SELECT leadhub_ingest_call(%s::jsonb)"  # one call, its own transaction (fastpath)


async def ingest_call_autocommit(
    pool: StatementPool,
    call: CallRecord,
    *,
    region: str = "IN",
    policy: LeadPolicy = LeadPolicy.ATTACH,
    callback_sla: timedelta = timedelta(minutes=30),
) -> CallIngest:
    """PostgreSQL: the call as one statement that is its own transaction (the webhook's path)."""
    payload = call_payload(call, region=region, policy=policy, callback_sla=callback_sla)
    return call_result(await pool.call_json(INGEST_CALL_SQL, payload))


def call_payload(call: CallRecord, *, region: str, policy: LeadPolicy, callback_sla: timedelta) -> str:
    """The JSON document `leadhub_ingest_call` takes (see revision 0006)."""
    return json_dumps(call_document(call, region=region, policy=policy, callback_sla=callback_sla))


def call_document(
    call: CallRecord, *, region: str, policy: LeadPolicy, callback_sla: timedelta
) -> dict[str, Any]:
    """`call_payload` before it is serialised; `["call"]["customer_phone"]` is the caller in E.164."""
    virtual_number = canonical_number(call.virtual_number, region=region)
    # the function adds needs_branch and campaign from the number's mapping
    intake = _call_intake(call, virtual_number, branch_id=None, mapped={})
    payload = server_payload(intake, call.call_uuid, region=region, policy=policy)
    payload["sla_seconds"] = callback_sla.total_seconds()
    payload["call"] = {
        "call_uuid": call.call_uuid,
        "origin": call.origin.value,
        "direction": call.direction.value,
        "answered": call.answered,
        "duration_seconds": call.duration_seconds,
        "agent": call.agent,
        "lookup_number": virtual_number,
        "virtual_number": virtual_number or call.virtual_number,
        "customer_phone": canonical_number(call.customer_phone, region=region),
        "recording_url": call.recording_url,
        "started_at": call.started_at.isoformat() if call.started_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
    }
    return payload


def _call_intake(call: CallRecord, virtual_number: str | None, *, branch_id: int | None,
                 mapped: dict[str, Any]) -> Intake:  # fmt: skip
    """The enquiry a call is, for the shared intake; `mapped` adds what the number's mapping says."""
    return Intake(
        source=Channel.KNOWLARITY,
        phone=call.customer_phone,
        external_id=call.call_uuid,
        branch_id=branch_id,
        occurred_at=call.started_at,
        raw_payload=call.raw,
        extra={"virtual_number": virtual_number or call.virtual_number, **mapped,
               "direction": call.direction.value, "answered": call.answered, "origin": call.origin.value},
    )  # fmt: skip


def call_result(answer: dict[str, Any]) -> CallIngest:
    """From the JSON answer of `leadhub_ingest_call` (or one element of `leadhub_ingest_calls`')."""
    call_id = answer.get("call_id")
    return CallIngest(intake=IntakeResult.from_answer(answer), call_id=None if call_id is None else int(call_id),
                      number_mapped=bool(answer["number_mapped"]))  # fmt: skip


def _store_call(
    session: Session, call: CallRecord, result: IntakeResult, *, mapped: bool, region: str
) -> int:
    values = {
        "direction": call.direction.value,
        "answered": call.answered,
        "duration_seconds": call.duration_seconds,
        "agent": call.agent,
        "virtual_number": canonical_number(call.virtual_number, region=region) or call.virtual_number,
        "number_mapped": mapped,
        "customer_phone": result.phone or canonical_number(call.customer_phone, region=region),
        "recording_url": call.recording_url,
        "started_at": call.started_at,
        "ended_at": call.ended_at,
        "lead_id": result.lead_id,
        "customer_id": result.customer_id,
        "intake_event_id": result.event_id,
    }
    params = {"call_uuid": call.call_uuid, "origin": call.origin.value, "raw_payload": call.raw,
              "created_at": utcnow(), **values}  # fmt: skip
    # Core statements with parameters, not `.values(...)` built per call: this runs on every webhook.
    inserted = session.execute(
        upsert(session, _CALLS).on_conflict_do_nothing(index_elements=["call_uuid"]).returning(_CALLS.c.id),
        params,
    ).scalar_one_or_none()
    if inserted is not None:
        return int(inserted)
    existing = session.execute(
        select(Call).where(Call.call_uuid == call.call_uuid).with_for_update()
    ).scalar_one()
    # A second delivery never changes what the first recorded; it only fills what was missing.
    for column in ("duration_seconds", "agent", "recording_url", "started_at", "ended_at", "lead_id",
                   "customer_id", "customer_phone"):  # fmt: skip
        if getattr(existing, column) is None and values[column] is not None:
            setattr(existing, column, values[column])
    session.flush()
    return existing.id


def _open_callback(
    session: Session, call: CallRecord, *, call_id: int, lead_id: int, customer_id: int, sla: timedelta
) -> None:
    missed_at = call.started_at or utcnow()
    answered_since = session.execute(
        _ANSWERED_SINCE, {"customer_id": customer_id, "since": missed_at}
    ).first()
    if answered_since is not None:
        return  # the poll delivered the missed call after the answered one that settles it
    due = missed_at + sla
    session.execute(
        upsert(session, _TASKS).on_conflict_do_nothing(
            index_elements=["lead_id"], index_where=text("status = 'open'")
        ),
        {"lead_id": lead_id, "customer_id": customer_id, "call_id": call_id, "missed_at": missed_at,
         "due_at": due, "status": CallbackStatus.OPEN.value, "created_at": utcnow()},
    )  # fmt: skip
    session.execute(_FOLLOW_UP, {"b_lead": lead_id, "due": due})


def _close_callbacks(session: Session, call: CallRecord, *, call_id: int, customer_id: int) -> None:
    answered_at = call.started_at or utcnow()
    session.execute(
        _CLOSE_TASKS,
        {"b_customer": customer_id, "answered_at": answered_at, "closer": call_id, "now": utcnow()},
    )
