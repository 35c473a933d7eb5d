"""Meta leads through the shared intake: webhook events recorded now and fetched later, synced leads,
pages and forms, and token problems recorded where `leadhub status` and /readyz show them.

Services flush, never commit; `fetch_pending` takes a session factory because each event is its
own unit of work (one failing fetch must not undo the others).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import null, select, update
from sqlalchemy.orm import Session, sessionmaker

from leadhub.config import LeadPolicy
from leadhub.db.dialect import upsert
from leadhub.db.models import IntakeEvent, IntakeStatus, MetaForm, MetaPage, SyncCheckpoint
from leadhub.db.session import session_scope
from leadhub.db.types import utcnow
from leadhub.errors import NotFoundError, ValidationFailed
from leadhub.integrations.meta.client import GraphClient, GraphError, GraphTokenError
from leadhub.integrations.meta.mapper import IGNORE, TARGETS, FormRules, MetaPayloadError, map_lead
from leadhub.integrations.meta.webhook import LeadgenChange
from leadhub.leads.intake import Channel, IntakeResult, ingest

log = logging.getLogger(__name__)
SOURCE = Channel.META.value
TOKEN_EXPIRED = "token_expired"  # noqa: S105 (an error kind, not a secret)


# --- pages and forms


def save_page(session: Session, *, page_id: str, token: str, name: str | None = None) -> MetaPage:
    """Add a page or replace its token; a new token clears the page's token problem."""
    now = utcnow()
    page = session.get(MetaPage, page_id)
    if page is None:
        page = MetaPage(page_id=page_id, name=name, access_token=token, created_at=now, updated_at=now)
        session.add(page)
    else:
        page.access_token, page.updated_at = token, now
        page.name = name or page.name
    page.token_error = page.token_error_at = None
    checkpoint = session.execute(
        select(SyncCheckpoint).where(
            SyncCheckpoint.channel == SOURCE, SyncCheckpoint.scope == f"page:{page_id}"
        )
    ).scalar_one_or_none()
    if checkpoint is not None:
        checkpoint.last_error = checkpoint.error_kind = None
        checkpoint.last_success_at = now
    session.flush()
    return page


def discover_forms(session: Session, client: GraphClient, *, page_id: str) -> list[MetaForm]:
    """Store the page's forms and their questions (keys) as Graph lists them; mappings are kept."""
    page = _page(session, page_id)
    try:
        found = client.page_forms(page_id, page.access_token)
    except GraphTokenError as error:
        mark_token_error(session, page_id=page_id, error=error)
        raise ValidationFailed(token_message(page, error)) from error
    now = utcnow()
    forms = []
    for item in found:
        form_id = str(item["id"])
        form = session.get(MetaForm, form_id)
        if form is None:
            form = MetaForm(form_id=form_id, page_id=page_id, field_map={}, sync_enabled=True,
                            created_at=now)  # fmt: skip
            session.add(form)
        form.name, form.status, form.questions = item.get("name"), item.get("status"), item.get("questions")
        form.updated_at = now
        forms.append(form)
    session.flush()
    return forms


def map_form(
    session: Session,
    *,
    form_id: str,
    branch_id: int | None = None,
    source_label: str | None = None,
    questions: dict[str, str] | None = None,
    sync_enabled: bool | None = None,
) -> MetaForm:
    form = session.get(MetaForm, form_id)
    if form is None:
        raise NotFoundError(f"unknown Meta form {form_id}: run `leadhub channels meta forms PAGE_ID` first")
    if branch_id is not None:
        form.branch_id = branch_id
    if source_label is not None:
        form.source_label = source_label
    if sync_enabled is not None:
        form.sync_enabled = sync_enabled
    if questions:
        bad = {t for t in questions.values() if t not in (*TARGETS, IGNORE)}
        if bad:
            raise ValidationFailed(
                f"unknown target(s) {sorted(bad)}; use one of {', '.join((*TARGETS, IGNORE))}"
            )
        form.field_map = {**(form.field_map or {}), **questions}
    form.updated_at = utcnow()
    session.flush()
    return form


def form_rules(session: Session, form_id: str | None, page_id: str | None = None) -> FormRules:
    form = session.get(MetaForm, form_id) if form_id else None
    if form is None:
        return FormRules(form_id=form_id, page_id=page_id)
    return FormRules(form_id=form.form_id, page_id=form.page_id, branch_id=form.branch_id,
                     source_label=form.source_label, field_map=dict(form.field_map or {}))  # fmt: skip


def _page(session: Session, page_id: str) -> MetaPage:
    page = session.get(MetaPage, page_id)
    if page is None:
        raise NotFoundError(f"unknown Meta page {page_id}: add it with `leadhub channels meta add-page`")
    return page


# --- token problems, where people see them


def token_message(page: MetaPage, error: GraphError) -> str:
    label = f"{page.name} ({page.page_id})" if page.name else page.page_id
    return (
        f"Meta page {label}: Graph rejected the page token (code {error.code}"
        f"{'/' + str(error.subcode) if error.subcode else ''}). Leads are kept pending, none are lost. "
        f"Generate a new page token (Business Settings > System users, or /me/accounts with a long-lived "
        f"user token) and run `leadhub channels meta set-token {page.page_id}`."
    )


def mark_token_error(session: Session, *, page_id: str, error: GraphError) -> None:
    page = session.get(MetaPage, page_id)
    if page is None:
        return
    message = token_message(page, error)
    now = utcnow()
    page.token_error, page.token_error_at = message, now
    record_checkpoint_error(session, scope=f"page:{page_id}", kind=TOKEN_EXPIRED, message=message)
    log.error("%s", message)


def checkpoint(session: Session, scope: str) -> SyncCheckpoint:
    """The (meta, scope) checkpoint row, created once and locked for this transaction."""
    session.execute(
        upsert(session, SyncCheckpoint).values(channel=SOURCE, scope=scope)
        .on_conflict_do_nothing(index_elements=["channel", "scope"])
    )  # fmt: skip
    return session.execute(
        select(SyncCheckpoint)
        .where(SyncCheckpoint.channel == SOURCE, SyncCheckpoint.scope == scope)
        .with_for_update()
    ).scalar_one()


def record_checkpoint_error(session: Session, *, scope: str, kind: str, message: str) -> None:
    row = checkpoint(session, scope)
    row.last_run_at, row.error_kind, row.last_error = utcnow(), kind, message
    session.flush()


# --- leads through the shared intake


def ingest_lead(
    session: Session,
    lead: dict[str, Any],
    *,
    rules: FormRules,
    region: str = "IN",
    policy: LeadPolicy = LeadPolicy.ATTACH,
) -> IntakeResult:
    """One Graph lead through the shared intake. A lead a webhook recorded first (pending, waiting for
    its fetch) is processed here instead of being reported as a duplicate: one lead either way."""
    return ingest(session, map_lead(lead, rules), region=region, policy=policy, claim_pending=True)


def record_webhook(session: Session, changes: list[LeadgenChange]) -> list[int]:
    """Record each leadgen change as a pending inbox event keyed by leadgen_id; ids of the new ones.

    `intake` is SQL NULL (not JSON null) until the fetch: `leadhub inbox replay` skips such events,
    and `fetch_pending` finds them.
    """
    new = []
    for change in changes:
        event_id = session.execute(
            upsert(session, IntakeEvent)
            .values(
                source=SOURCE,
                external_id=change.leadgen_id,
                status=IntakeStatus.PENDING.value,
                reason="waiting for the Graph fetch",
                intake=null(),
                raw_payload=change.value,
                attempts=0,
                received_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["source", "external_id"])
            .returning(IntakeEvent.id)
        ).scalar_one_or_none()
        if event_id is not None:
            new.append(event_id)
    session.flush()
    return new


@dataclass
class FetchReport:
    processed: int = 0
    waiting: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def fetch_pending(
    factory: sessionmaker[Session],
    client: GraphClient,
    *,
    event_ids: list[int] | None = None,
    region: str = "IN",
    policy: LeadPolicy = LeadPolicy.ATTACH,
    limit: int = 1000,
) -> FetchReport:
    """Fetch and ingest webhook events still waiting for their lead. A failure leaves the event
    pending with the reason; the next call (the background task, then every sync run) retries it."""
    report = FetchReport()
    with session_scope(factory) as session:
        query = (
            select(IntakeEvent.id)
            .where(
                IntakeEvent.source == SOURCE,
                IntakeEvent.status == IntakeStatus.PENDING.value,
                IntakeEvent.intake.is_(None),
            )
            .order_by(IntakeEvent.id)
            .limit(limit)
        )
        if event_ids is not None:
            query = query.where(IntakeEvent.id.in_(event_ids))
        ids = list(session.execute(query).scalars())
    for event_id in ids:
        outcome = _fetch_one(factory, client, event_id, region=region, policy=policy)
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
        if outcome in ("created", "attached", "duplicate", "failed"):
            report.processed += 1
        else:
            report.waiting += 1
    return report


def _fetch_one(
    factory: sessionmaker[Session], client: GraphClient, event_id: int, *, region: str, policy: LeadPolicy
) -> str:
    with session_scope(factory) as session:
        event = session.get(IntakeEvent, event_id)
        if event is None or event.status != IntakeStatus.PENDING.value or event.intake is not None:
            return "done_elsewhere"
        value = event.raw_payload or {}
        page_id, form_id = value.get("page_id"), value.get("form_id")
        page = session.get(MetaPage, page_id) if page_id else None
        if page is None and form_id and (form := session.get(MetaForm, form_id)) is not None:
            page = session.get(MetaPage, form.page_id)
        if page is None:
            _wait(
                session,
                event_id,
                f"no token stored for Meta page {page_id}: run `leadhub channels meta add-page`",
            )
            return "no_page"
        if page.token_error:
            _wait(session, event_id, "waiting for a new page token (see `leadhub status`)")
            return TOKEN_EXPIRED
        token, page_id = page.access_token, page.page_id
        rules = form_rules(session, form_id, page_id)
    try:
        lead = client.get_lead(event.external_id, token)
    except GraphTokenError as error:
        with session_scope(factory) as session:
            mark_token_error(session, page_id=page_id, error=error)
            _wait(session, event_id, "waiting for a new page token (see `leadhub status`)")
        return TOKEN_EXPIRED
    except GraphError as error:
        log.warning("Meta lead %s not fetched yet: %s", event.external_id, error)
        with session_scope(factory) as session:
            _wait(session, event_id, f"Graph fetch failed, will retry: {error}")
        return "graph_error"
    with session_scope(factory) as session:
        try:
            result = ingest_lead(session, lead, rules=rules, region=region, policy=policy)
        except MetaPayloadError as error:
            _wait(session, event_id, f"unreadable lead from Graph, will retry: {error}")
            return "unreadable"
        return result.status.value


def _wait(session: Session, event_id: int, reason: str) -> None:
    session.execute(
        update(IntakeEvent)
        .where(IntakeEvent.id == event_id)
        .values(reason=reason, attempts=IntakeEvent.attempts + 1)
    )
