"""Meta lead ads: the webhook (handshake + signed deliveries) and the channel's status for people.

A delivery is verified, recorded (one pending inbox event per leadgen_id) and committed before the
200 goes out; the Graph fetch runs afterwards on a small thread pool, so a slow or down Graph never
delays the answer. An event whose fetch fails stays pending; every `leadhub sync meta` run retries it.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from leadhub.api.deps import AdminDep, SessionDep, SettingsDep
from leadhub.api.errors import error_response
from leadhub.config import Settings
from leadhub.db.models import MetaForm, MetaPage, SyncCheckpoint
from leadhub.db.session import session_scope
from leadhub.errors import AuthenticationError, NotConfiguredError, ValidationFailed
from leadhub.integrations.meta import service, vendor
from leadhub.integrations.meta.sync import make_client
from leadhub.integrations.meta.webhook import leadgen_changes, signature_ok, verify_handshake

log = logging.getLogger(__name__)
router = APIRouter(tags=["meta"])


@router.get("/webhooks/meta", response_model=None)
def meta_handshake(request: Request, settings: SettingsDep) -> Response:
    token = settings.meta_verify_token.get_secret_value() if settings.meta_verify_token else None
    challenge = verify_handshake(dict(request.query_params), token)
    if challenge is None:
        return PlainTextResponse("verification failed", status_code=403)
    return PlainTextResponse(challenge)


@router.post("/webhooks/meta", response_model=None)
async def meta_webhook(request: Request, background: BackgroundTasks) -> Response:
    settings: Settings = request.app.state.settings
    if settings.meta_app_secret is None:
        return error_response(NotConfiguredError("set LEADHUB_META_APP_SECRET to receive Meta webhooks"))
    body = await request.body()  # the raw bytes: the signature is over these, not re-serialised JSON
    if not signature_ok(
        body, request.headers.get(vendor.SIGNATURE_HEADER), settings.meta_app_secret.get_secret_value()
    ):
        return error_response(AuthenticationError(f"missing or wrong {vendor.SIGNATURE_HEADER}"))
    try:
        payload = json.loads(body)
    except ValueError:
        return error_response(ValidationFailed("the body is not JSON"))
    changes = leadgen_changes(payload)
    factory: sessionmaker[Session] = request.app.state.session_factory
    new_ids = await run_in_threadpool(_record, factory, changes)
    if new_ids:
        background.add_task(_schedule_fetch, request.app.state, settings, new_ids)
    # Returned directly, so the tasks must ride on this response to run after it is sent.
    return JSONResponse({"received": len(changes), "new": len(new_ids)}, background=background)


def _record(factory: sessionmaker[Session], changes: list[Any]) -> list[int]:
    with session_scope(factory) as session:  # committed before the 200 is sent
        return service.record_webhook(session, changes)


def _schedule_fetch(state: Any, settings: Settings, event_ids: list[int]) -> None:
    executor: ThreadPoolExecutor | None = getattr(state, "meta_fetcher", None)
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="meta-fetch")
        state.meta_fetcher = executor
    executor.submit(_fetch, state.session_factory, settings, event_ids)


def _fetch(factory: sessionmaker[Session], settings: Settings, event_ids: list[int]) -> None:
    try:
        with make_client(settings) as client:
            report = service.fetch_pending(factory, client, event_ids=event_ids, region=settings.phone_region,
                                           policy=settings.lead_policy)  # fmt: skip
        if report.waiting:
            log.warning(
                "Meta webhook: %d lead(s) still waiting for Graph; `leadhub sync meta` retries",
                report.waiting,
            )
    except Exception:  # the events stay pending; never lose the thread pool to one failure
        log.exception("Meta webhook fetch failed; events stay pending")


@router.get("/api/meta/status", dependencies=[AdminDep])
def meta_status(session: SessionDep) -> dict[str, Any]:
    """Pages (token problems included, never the token), forms and their checkpoints."""
    checkpoints = {
        c.scope: c
        for c in session.execute(
            select(SyncCheckpoint).where(SyncCheckpoint.channel == service.SOURCE)
        ).scalars()
    }
    pages = [
        {"page_id": p.page_id, "name": p.name, "token_ok": p.token_error is None, "problem": p.token_error}
        for p in session.execute(select(MetaPage).order_by(MetaPage.page_id)).scalars()
    ]
    forms = []
    for f in session.execute(select(MetaForm).order_by(MetaForm.form_id)).scalars():
        cp = checkpoints.get(f.form_id)
        forms.append({
            "form_id": f.form_id, "page_id": f.page_id, "name": f.name, "branch_id": f.branch_id,
            "sync_enabled": f.sync_enabled,
            "cursor": cp.cursor.isoformat() if cp and cp.cursor else None,
            "last_success_at": cp.last_success_at.isoformat() if cp and cp.last_success_at else None,
            "error_kind": cp.error_kind if cp else None, "problem": cp.last_error if cp else None,
        })  # fmt: skip
    return {"pages": pages, "forms": forms}
