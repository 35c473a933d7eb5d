"""`leadhub sync meta`: poll each form's leads through the shared intake, behind the one-poller lock.

Per form, the checkpoint cursor means "every lead created strictly before this instant is in". It
moves to the run's start only when every page was read and every lead was ingested; a lead that
failed pins it at that lead's time, so the next run reads it again. A reconciliation pass re-reads
the last `meta_reconcile_hours` (48 by default) now and then, for leads whose webhook never came.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.config import Settings
from leadhub.db.models import MetaForm, MetaPage
from leadhub.db.session import make_session_factory, session_scope
from leadhub.db.types import utcnow
from leadhub.errors import LeadhubError
from leadhub.integrations.http import RetryPolicy
from leadhub.integrations.locks import poller_lock
from leadhub.integrations.meta import service
from leadhub.integrations.meta.client import (
    GraphClient,
    GraphError,
    GraphRateLimited,
    GraphTokenError,
    GraphUnavailable,
)
from leadhub.integrations.meta.mapper import FormRules, map_lead, parse_time
from leadhub.leads.intake import Intake, IntakeError, ingest_many

log = logging.getLogger(__name__)


class PollerBusy(LeadhubError):
    status_code = 409
    code = "poller_busy"


@dataclass
class FormSyncReport:
    form_id: str
    pages: int = 0
    fetched: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    failed_leads: int = 0
    reconciled: bool = False
    cursor: datetime | None = None
    error_kind: str | None = None
    error: str | None = None


def make_client(settings: Settings) -> GraphClient:
    secret = settings.meta_app_secret.get_secret_value() if settings.meta_app_secret else None
    return GraphClient(
        settings.meta_graph_url,
        settings.meta_graph_version,
        app_secret=secret,
        timeout=settings.meta_timeout_seconds,
        policy=RetryPolicy(attempts=settings.meta_fetch_attempts, base_delay=settings.meta_retry_base_delay),
        max_rate_wait=settings.meta_max_rate_wait_seconds,
    )


def sync_form(
    factory: sessionmaker[Session],
    client: GraphClient,
    settings: Settings,
    *,
    form_id: str,
    since: datetime | None = None,
    reconcile: bool | None = None,
) -> FormSyncReport:
    report = FormSyncReport(form_id=form_id)
    started = utcnow()
    with session_scope(factory) as session:
        form = session.get(MetaForm, form_id)
        if form is None:
            raise LeadhubError(f"unknown Meta form {form_id}")
        page = session.get(MetaPage, form.page_id)
        assert page is not None
        cp = service.checkpoint(session, form_id)
        cursor = cp.cursor
        state = dict(cp.state or {})
        if page.token_error:
            report.error_kind, report.error = service.TOKEN_EXPIRED, page.token_error
            cp.last_run_at, cp.error_kind, cp.last_error = started, report.error_kind, page.token_error
            return report
        token, page_id = page.access_token, page.page_id
        rules = service.form_rules(session, form_id, page_id)
    window = timedelta(hours=settings.meta_reconcile_hours)
    last_reconcile = parse_time(state.get("last_reconcile_at"))
    if reconcile is None:
        due = timedelta(minutes=settings.meta_reconcile_every_minutes)
        reconcile = last_reconcile is None or started - last_reconcile >= due
    start = since or cursor or started - window
    if reconcile:
        start = min(start, started - window)
    report.reconciled = reconcile

    failed_at: list[datetime] = []
    complete = False
    try:
        # GREATER_THAN on whole seconds: step back one so a lead at exactly `start` is read again.
        pages = client.form_leads(
            form_id, token, since=int(start.timestamp()) - 1, limit=settings.meta_page_size
        )
        for leads in pages:
            report.pages += 1
            report.fetched += len(leads)
            with session_scope(factory) as session:
                _ingest_page(session, leads, rules, settings, report, failed_at)
        complete = True
    except GraphTokenError as error:
        report.error_kind = service.TOKEN_EXPIRED
        with session_scope(factory) as session:
            service.mark_token_error(session, page_id=page_id, error=error)
            report.error = session.get(MetaPage, page_id).token_error  # type: ignore[union-attr]
    except GraphRateLimited as error:
        report.error_kind = "rate_limited"
        report.error = f"{error}; throttled for about {error.wait_seconds:.0f}s, the next run resumes"
    except GraphUnavailable as error:
        report.error_kind, report.error = "unavailable", f"{error}; the next run retries"
    except GraphError as error:
        report.error_kind, report.error = "graph_error", str(error)

    with session_scope(factory) as session:
        cp = service.checkpoint(session, form_id)
        cp.last_run_at = started
        new_cursor = cp.cursor
        if failed_at:
            new_cursor = min([*failed_at, *([new_cursor] if new_cursor else [])])
        elif complete:
            new_cursor = max(started, new_cursor) if new_cursor else started
        cp.cursor = new_cursor
        report.cursor = new_cursor
        if failed_at and report.error_kind is None:
            report.error_kind = "lead_failed"
            report.error = (
                f"{len(failed_at)} lead(s) could not be ingested; the checkpoint stays at the first of them "
                "and the next run retries (details in the log)"
            )
        cp.error_kind, cp.last_error = report.error_kind, report.error
        if complete and not failed_at:
            cp.last_success_at = started
            if reconcile:
                state["last_reconcile_at"] = started.isoformat()
        state["last_run"] = {"pages": report.pages, "fetched": report.fetched, **report.outcomes}
        cp.state = state
    return report


def _ingest_page(
    session: Session,
    leads: list[dict[str, Any]],
    rules: FormRules,
    settings: Settings,
    report: FormSyncReport,
    failed_at: list[datetime],
) -> None:
    """One page through the shared intake in one batch (one round trip on PostgreSQL). A lead that
    cannot be mapped or raises is not skipped: the cursor stays before it and the next run retries."""
    mapped: list[tuple[dict[str, Any], Intake]] = []
    for lead in leads:
        try:
            mapped.append((lead, map_lead(lead, rules)))
        except Exception as error:  # a malformed Graph record: retried next run, reported
            _failed(lead, error, report, failed_at)
    results = ingest_many(session, [intake for _, intake in mapped], region=settings.phone_region,
                          policy=settings.lead_policy, claim_pending=True)  # fmt: skip
    for (lead, _), result in zip(mapped, results, strict=True):
        if isinstance(result, IntakeError):
            _failed(lead, result.error, report, failed_at)
            continue
        key = result.status.value
        report.outcomes[key] = report.outcomes.get(key, 0) + 1


def _failed(lead: object, error: Exception | str, report: FormSyncReport, failed_at: list[datetime]) -> None:
    report.failed_leads += 1
    try:
        when = parse_time(lead.get("created_time")) if isinstance(lead, dict) else None
    except ValueError:
        when = None
    failed_at.append(when or datetime.fromtimestamp(0).astimezone())
    detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    log.warning("Meta lead %s not ingested, will retry: %s",
                lead.get("id") if isinstance(lead, dict) else "?", detail[:200])  # fmt: skip


@dataclass
class SyncReport:
    pending: service.FetchReport
    forms: list[FormSyncReport]


def run_sync(
    engine: Engine,
    settings: Settings,
    *,
    client: GraphClient | None = None,
    form_id: str | None = None,
    since: datetime | None = None,
    reconcile: bool | None = None,
) -> SyncReport:
    """One run over every enabled form (or one), after retrying webhook events still waiting."""
    factory = make_session_factory(engine)
    own_client = client is None
    graph = client or make_client(settings)
    try:
        with poller_lock(engine, "meta") as held:
            if not held:
                raise PollerBusy("another `leadhub sync meta` is running; this one did nothing")
            pending = service.fetch_pending(factory, graph, region=settings.phone_region,
                                            policy=settings.lead_policy)  # fmt: skip
            with session_scope(factory) as session:
                query = select(MetaForm.form_id).order_by(MetaForm.form_id)
                if form_id is not None:
                    query = query.where(MetaForm.form_id == form_id)
                else:
                    query = query.where(MetaForm.sync_enabled.is_(True))
                form_ids = list(session.execute(query).scalars())
            if form_id is not None and not form_ids:
                raise LeadhubError(f"unknown Meta form {form_id}: run `leadhub channels meta forms PAGE_ID`")
            # Forms are independent (own checkpoint, own transactions): overlap their Graph waits and
            # database round trips. The lock above still makes this the only poller.
            workers = max(1, min(settings.meta_sync_workers, len(form_ids) or 1))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meta-sync") as pool:
                forms = list(
                    pool.map(
                        lambda f: sync_form(
                            factory, graph, settings, form_id=f, since=since, reconcile=reconcile
                        ),
                        form_ids,
                    )
                )
    finally:
        if own_client:
            graph.close()
    return SyncReport(pending=pending, forms=forms)
