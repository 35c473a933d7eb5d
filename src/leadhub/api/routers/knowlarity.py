"""POST and GET /webhooks/knowlarity: Knowlarity's push (see integrations/knowlarity/webhook.py).

The push is the busiest request leadhub serves, so it is answered by a plain ASGI middleware
(`KnowlarityPush`, installed by create_app) before FastAPI's routing, request and response layers;
the route below documents it in OpenAPI and answers it the same way when the middleware is absent.
Both run `_respond`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, QueryParams, State
from starlette.types import ASGIApp, Receive, Scope, Send

from leadhub.api.errors import error_response, unstorable_response
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

PATH = "/webhooks/knowlarity"
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
        # call_id None: the database refused a value of the call; only its inbox row was kept
        kept = "the call was kept" if result.call_id is not None else "the push was kept in the inbox"
        failure = ValidationFailed(f"{kept} but could not become a lead: {reason}",
                                   status="failed", event_id=intake.event_id)  # fmt: skip
        return {"error": failure}
    return {
        "status": intake.status.value,
        "lead_id": intake.lead_id,
        "customer_id": intake.customer_id,
        "call_id": result.call_id,
        "event_id": intake.event_id,
    }


async def _respond(
    state: State, query: Mapping[str, str], content_type: str | None, header_key: str | None, body: bytes
) -> JSONResponse:
    """The push's answer. Database errors (unavailable, a value it refuses) propagate to the caller."""
    settings: Settings = state.settings
    try:
        check_key(settings, query_key=query.get(KEY_PARAM), header_key=header_key)
    except LeadhubError as error:
        return error_response(error)
    payload = read_payload(query, content_type, body)
    # PostgreSQL: an autocommit statement on the event loop, with the pushes that arrive with it when
    # batching is on; else (SQLite, or a payload that cannot be a call and must be recorded as failed)
    # the Session path on a worker thread.
    fast = await receive_push_autocommit(
        state.statement_pool, payload, settings=settings, batcher=state.call_batcher
    )
    if fast is not None:
        answer = _answer(fast)
    else:
        answer = _answer(await run_in_threadpool(_receive, state.session_factory, settings, payload))
    if "error" in answer:
        return error_response(answer["error"])
    return JSONResponse(answer)


@router.post(PATH, response_model=None, operation_id="knowlarity_push_post")
@router.get(PATH, response_model=None, operation_id="knowlarity_push_get")
async def knowlarity_webhook(request: Request) -> JSONResponse:
    """Record a Knowlarity call push (query string, form or JSON). 200 with {status, lead_id,
    customer_id}; 401 without the key (nothing stored); 422 for an unusable payload (kept as failed)."""
    return await _respond(request.app.state, request.query_params, request.headers.get("content-type"),
                          request.headers.get(KEY_HEADER), await request.body())  # fmt: skip


class KnowlarityPush:
    """ASGI middleware: GET and POST on the push's path are answered here, everything else passes on.

    It sits inside the app's outermost layers (an unhandled error is still the app's 500) and answers
    the errors the app's handlers would: the app's LeadhubError and refused-value (422) answers.
    """

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "POST") or _route_path(scope) != PATH:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender is gone before its request was whole: nothing was stored
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers = Headers(scope=scope)
        try:
            response = await _respond(self.state, QueryParams(scope["query_string"]),
                                      headers.get("content-type"), headers.get(KEY_HEADER), b"".join(chunks))  # fmt: skip
        except LeadhubError as error:
            response = error_response(error)
        except (psycopg.DataError, DataError) as error:
            response = unstorable_response(scope["method"], PATH, error)
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
