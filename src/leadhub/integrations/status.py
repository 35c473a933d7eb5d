"""Channel health for people: `leadhub status`, `/readyz` details and the API share this report."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadhub.db.models import IntakeEvent, IntakeStatus, SyncCheckpoint


def channel_status(session: Session) -> dict[str, Any]:
    pollers = [
        {
            "channel": c.channel,
            "scope": c.scope,
            "cursor": c.cursor,
            "last_run_at": c.last_run_at,
            "last_success_at": c.last_success_at,
            "last_error": c.last_error,
            "error_kind": c.error_kind,
        }
        for c in session.execute(
            select(SyncCheckpoint).order_by(SyncCheckpoint.channel, SyncCheckpoint.scope)
        ).scalars()
    ]
    counts = dict(
        session.execute(
            select(IntakeEvent.status, func.count())
            .where(IntakeEvent.status != IntakeStatus.PROCESSED.value)
            .group_by(IntakeEvent.status)
        ).all()
    )
    problems = [
        f"{p['channel']}/{p['scope']}: {p['error_kind']}: {p['last_error']}"
        for p in pollers
        if p["last_error"]
    ]
    return {
        "pollers": pollers,
        "inbox": {"failed": counts.get("failed", 0), "pending": counts.get("pending", 0)},
        "problems": problems,
    }
