"""The call-log poll, the source of truth behind the push.

One run reads the window [start, end] page by page and ingests each call in its own unit of work.
The checkpoint (sync_checkpoints, channel "knowlarity", scope "calllog") says "every call that
started before `cursor` is ingested": it moves to the window's end only when every page was read and
every call recorded, and otherwise to the start of the earliest call that could not be recorded, or
not at all. The next window starts `overlap` before the cursor, because Knowlarity can publish a
call's record after later calls; re-reading is harmless, the inbox makes it a duplicate.
A call whose number cannot become a lead is recorded as a failed inbox event (replayable): that is
"recorded", it does not hold the checkpoint back.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.config import Settings
from leadhub.db.dialect import upsert
from leadhub.db.models import IntakeStatus, SyncCheckpoint
from leadhub.db.session import make_session_factory, session_scope
from leadhub.db.types import utcnow
from leadhub.errors import LeadhubError
from leadhub.integrations import inbox
from leadhub.integrations.http import VendorUnavailable
from leadhub.integrations.knowlarity.calls import ingest_call
from leadhub.integrations.knowlarity.client import KnowlarityClient, KnowlarityError
from leadhub.integrations.knowlarity.payloads import PayloadError, parse_calllog_record, payload_fingerprint
from leadhub.integrations.locks import poller_lock
from leadhub.leads.intake import Channel

log = logging.getLogger(__name__)

CHANNEL = "knowlarity"
SCOPE = "calllog"


class PollerBusy(LeadhubError):
    status_code = 409
    code = "poller_busy"


@dataclass
class SyncReport:
    start: datetime
    end: datetime
    fetched: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # created, attached, duplicate, failed, ...
    complete: bool = False  # every page was read
    error: str | None = None
    error_kind: str | None = None
    cursor: datetime | None = None  # the checkpoint after this run

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "nothing new"
        state = (
            "complete"
            if self.complete and not self.error
            else f"INCOMPLETE ({self.error_kind}: {self.error})"
        )
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC: {self.fetched} records, {counts}; {state}"


def read_checkpoint(session: Session) -> SyncCheckpoint | None:
    return session.execute(
        select(SyncCheckpoint).where(SyncCheckpoint.channel == CHANNEL, SyncCheckpoint.scope == SCOPE)
    ).scalar_one_or_none()


def sync_calllog(
    factory: sessionmaker[Session],
    client: KnowlarityClient,
    *,
    settings: Settings,
    since: datetime | None = None,
    until: datetime | None = None,
) -> SyncReport:
    """One poll of the call log. Callers hold the poller lock (see `run_sync`)."""
    now = utcnow()
    with session_scope(factory) as session:
        checkpoint = read_checkpoint(session)
        cursor = checkpoint.cursor if checkpoint else None
    overlap = timedelta(minutes=settings.knowlarity_sync_overlap_minutes)
    start = since or (
        cursor - overlap if cursor else now - timedelta(hours=settings.knowlarity_first_sync_hours)
    )
    end = until or now
    report = SyncReport(start=start, end=end)
    unrecorded: list[datetime] = []
    seen: set[str] = set()
    try:
        for record in client.iter_calllog(start, end, limit=settings.knowlarity_page_size):
            report.fetched += 1
            _ingest_record(factory, record, settings=settings, seen=seen, report=report, unrecorded=unrecorded, start=start)  # fmt: skip
        report.complete = True
    except VendorUnavailable as error:
        report.error, report.error_kind = str(error), "unavailable"
    except KnowlarityError as error:
        report.error, report.error_kind = str(error), error.kind
    if report.complete and unrecorded:
        report.error, report.error_kind = f"{len(unrecorded)} call(s) could not be recorded", "ingest_failed"
    report.cursor = _advance(factory, cursor, report, unrecorded, now=now)
    log.info("knowlarity sync %s", report.summary())
    return report


def _ingest_record(
    factory: sessionmaker[Session],
    record: dict[str, object],
    *,
    settings: Settings,
    seen: set[str],
    report: SyncReport,
    unrecorded: list[datetime],
    start: datetime,
) -> None:
    uuid = str(record.get("uuid") or "")
    if uuid and uuid in seen:
        report.outcomes["repeated_in_run"] += 1  # the same record on two pages
        return
    if uuid:
        seen.add(uuid)
    try:
        call = parse_calllog_record(record)
    except PayloadError as error:
        with session_scope(factory) as session:
            inbox.record_event(session, source=Channel.KNOWLARITY.value,
                               external_id=f"invalid:{payload_fingerprint(record)}", intake=None,
                               raw_payload=record, status=IntakeStatus.FAILED, reason=str(error))  # fmt: skip
        report.outcomes["unusable"] += 1
        return
    try:
        with session_scope(factory) as session:
            result = ingest_call(
                session,
                call,
                region=settings.phone_region,
                policy=settings.knowlarity_lead_policy,
                callback_sla=timedelta(minutes=settings.knowlarity_callback_sla_minutes),
            )
        report.outcomes[result.status.value] += 1
        if not result.number_mapped:
            report.outcomes["to_unmapped_number"] += 1
    except Exception as error:
        # Not recorded at all (database refused, or a bug): the checkpoint stays before this call so
        # the next run retries it, and the run goes on with the others.
        # Only the error's type: a database error's text can carry the row's values (phone numbers).
        log.error("knowlarity call %s not recorded: %s", call.call_uuid, type(error).__name__)
        unrecorded.append(call.started_at or start)
        report.outcomes["not_recorded"] += 1


def _advance(
    factory: sessionmaker[Session],
    cursor: datetime | None,
    report: SyncReport,
    unrecorded: list[datetime],
    *,
    now: datetime,
) -> datetime | None:
    new = cursor
    # Only a window that touches the checkpoint can move it; a later --since would leave a gap.
    contiguous = cursor is None or report.start <= cursor
    if report.complete and contiguous:
        reached = min([report.end, *unrecorded])
        new = reached if cursor is None else max(cursor, reached)
    with session_scope(factory) as session:
        session.execute(
            upsert(session, SyncCheckpoint)
            .values(channel=CHANNEL, scope=SCOPE)
            .on_conflict_do_nothing(index_elements=["channel", "scope"])
        )
        row = read_checkpoint(session)
        assert row is not None
        row.cursor = new
        row.last_run_at = now
        row.last_error, row.error_kind = report.error, report.error_kind
        if report.complete and not report.error:
            row.last_success_at = now
        row.state = {"last_window": [report.start.isoformat(), report.end.isoformat()],
                     "fetched": report.fetched, "outcomes": dict(report.outcomes)}  # fmt: skip
    return new


def run_sync(
    engine: Engine,
    settings: Settings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    client: KnowlarityClient | None = None,
) -> SyncReport:
    """Take the poller lock (advisory lock / file lock) and poll once; PollerBusy if another holds it."""
    with poller_lock(engine, CHANNEL) as held:
        if not held:
            raise PollerBusy("another Knowlarity poller is running; this one did nothing")
        own = client is None
        client = client or KnowlarityClient.from_settings(settings)
        try:
            return sync_calllog(
                make_session_factory(engine), client, settings=settings, since=since, until=until
            )
        finally:
            if own:
                client.close()
