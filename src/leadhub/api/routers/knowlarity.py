"""POST and GET /webhooks/knowlarity: Knowlarity's push (see integrations/knowlarity/webhook.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from leadhub.api.errors import error_response
from leadhub.config import Settings
from leadhub.db.session import session_scope
from leadhub.errors import LeadhubError, ValidationFailed
from leadhub.integrations.knowlarity.calls import CallIngest
from leadhub.integrations.knowlarity.webhook import (
    KEY_HEADER,
    KEY_PARAM,
    UnusablePayload,
    check_key,
    read_payload,
    receive_push,
    receive_push_autocommit,
)

router = APIRouter(tags=["webhooks"])


def _receive(factory: sessionmaker[Session], settings: Settings, payload: Any) -> CallIngest | LeadhubError:
    # Its own unit of work, committed before the answer: a failed payload is kept even though it is 4xx.
    with session_scope(factory) as session:
        try:
            return receive_push(session, payload, settings=settings)
        except UnusablePayload as error:
            return error


def _answer(result: CallIngest | LeadhubError) -> dict[str, Any]:
    if isinstance(result, LeadhubError):
        return {"error": result}
    intake = result.intake
    if intake.lead_id is None:
        reason = intake.reason or "unknown reason"
        failure = ValidationFailed(f"the call was kept but could not become a lead: {reason}",
                                   status="failed", event_id=intake.event_id)  # fmt: skip
        return {"error": failure}
    return {
        "status": intake.status.value,
        "lead_id": intake.lead_id,
        "customer_id": intake.customer_id,
        "call_id": result.call_id,
        "event_id": intake.event_id,
    }


@router.post("/webhooks/knowlarity", response_model=None, operation_id="knowlarity_push_post")
@router.get("/webhooks/knowlarity", response_model=None, operation_id="knowlarity_push_get")
async def knowlarity_webhook(request: Request) -> JSONResponse:
    """Record a Knowlarity call push (query string, form or JSON). 200 with {status, lead_id,
    customer_id}; 401 without the key (nothing stored); 422 for an unusable payload (kept as failed)."""
    settings: Settings = request.app.state.settings
    try:
        check_key(settings, query_key=request.query_params.get(KEY_PARAM),
                  header_key=request.headers.get(KEY_HEADER))  # fmt: skip
    except LeadhubError as error:
        return error_response(error)
    payload = read_payload(request.query_params, request.headers.get("content-type"), await request.body())
    state = request.app.state
    # PostgreSQL: one autocommit statement on the event loop; else (SQLite, or a payload that cannot
    # be a call and must be recorded as failed) the Session path on a worker thread.
    fast = await receive_push_autocommit(state.statement_pool, payload, settings=settings)
    if fast is not None:
        answer = _answer(fast)
    else:
        answer = _answer(await run_in_threadpool(_receive, state.session_factory, settings, payload))
    if "error" in answer:
        return error_response(answer["error"])
    return JSONResponse(answer)
