"""One JSON error shape for every failure: {"error": {"code", "message", ...details}}."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from leadhub.errors import LeadhubError, RateLimitedError

log = logging.getLogger(__name__)


def error_response(error: LeadhubError) -> JSONResponse:
    body: dict[str, Any] = {"code": error.code, "message": error.message, **error.details}
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimitedError) else None
    if error.status_code == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"error": body}, status_code=error.status_code, headers=headers)


def unstorable_response(method: str, path: str, error: Exception) -> JSONResponse:
    """A value the database refuses (a NUL character in text, a number out of range): the input's
    fault, answered 422 with the database's reason; parameters are not logged (they may be secrets)."""
    orig = error.orig if isinstance(error, DataError) else error
    reason = str(orig).splitlines()[0] if orig is not None else "invalid value"
    log.warning("refused input on %s %s: %s", method, path, reason)
    body = {
        "code": "invalid_input",
        "message": f"the input holds a value the database cannot store: {reason}",
    }
    return JSONResponse({"error": body}, status_code=422)


def _describe(errors: list[Any]) -> str:
    parts = []
    for item in errors[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(LeadhubError)
    async def _leadhub(_: Request, error: LeadhubError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        body = {"code": "invalid_input", "message": _describe(list(error.errors()))}
        return JSONResponse({"error": body}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, error: HTTPException) -> JSONResponse:
        body = {"code": "http_error", "message": str(error.detail)}
        return JSONResponse({"error": body}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(DataError)
    @app.exception_handler(psycopg.DataError)
    async def _unstorable(request: Request, error: Exception) -> JSONResponse:
        return unstorable_response(request.method, request.url.path, error)

    @app.exception_handler(Exception)
    async def _crash(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = {"code": "internal_error", "message": "internal error; the event was not stored, please retry"}
        return JSONResponse({"error": body}, status_code=500)
