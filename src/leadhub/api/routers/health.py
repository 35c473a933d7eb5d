"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from leadhub.db.migrate import current_revision, head_revision
from leadhub.integrations.status import channel_status

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is at the revision this build expects."""
    engine: Engine = request.app.state.engine
    checks: dict[str, object] = {}
    ready = True
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
        current, head = current_revision(engine), head_revision()
        checks["schema"] = {"current": current, "expected": head}
        if current != head:
            ready = False
            checks["schema_message"] = "run `leadhub db upgrade`"
        else:
            # Channel problems (an expired token, a vendor down) need a person, but this process can
            # still serve: report them without failing readiness.
            with Session(engine) as session:
                checks["channels"] = channel_status(session)["problems"]
    except Exception as error:  # any failure here means not ready
        ready = False
        checks["database"] = f"unavailable: {type(error).__name__}"
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
    )
