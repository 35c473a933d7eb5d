"""`leadhub reasons ...` (the pending / lost / disqualified reasons admins manage) and
`leadhub leads state` (a lead's lifecycle state read from its legacy columns)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from leadhub.cli.main import _settings, app, out
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.leads import reasons as reason_service
from leadhub.leads.reasons import ReasonKind

reasons_app = typer.Typer(no_args_is_help=True, help="Reasons for pending, lost and disqualified leads.")
leads_app = typer.Typer(no_args_is_help=True, help="Leads: lifecycle state.")
app.add_typer(reasons_app, name="reasons")
app.add_typer(leads_app, name="leads")


@reasons_app.command("list")
def reasons_list(
    kind: Annotated[ReasonKind | None, typer.Option(help="pending, lost or disqualified")] = None,
    include_inactive: Annotated[bool, typer.Option("--all", help="Also deactivated reasons")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The reasons staff can choose from."""
    engine = make_engine(_settings().database_url)
    with session_scope(make_session_factory(engine)) as session:
        rows = [
            {"kind": r.kind, "code": r.code, "label": r.label, "active": r.is_active}
            for r in reason_service.list_reasons(session, kind=kind, include_inactive=include_inactive)
        ]
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("kind", "code", "label", "active")
    for row in rows:
        table.add_row(str(row["kind"]), str(row["code"]), str(row["label"]), "yes" if row["active"] else "no")
    out.print(table)


@reasons_app.command("add")
def reasons_add(kind: ReasonKind, code: str, label: str) -> None:
    """Add a reason (the code is what leads_logs records; the label is what staff see)."""
    engine = make_engine(_settings().database_url)
    with session_scope(make_session_factory(engine)) as session:
        reason_service.add_reason(session, kind=kind, code=code, label=label)
    engine.dispose()
    out.print(f"added {kind.value} reason {code.strip()}")


def _set_active(kind: ReasonKind, code: str, active: bool) -> None:
    engine = make_engine(_settings().database_url)
    with session_scope(make_session_factory(engine)) as session:
        reason_service.set_reason_active(session, kind=kind, code=code, active=active)
    engine.dispose()
    out.print(f"{kind.value} reason {code} {'enabled' if active else 'disabled'}")


@reasons_app.command("disable")
def reasons_disable(kind: ReasonKind, code: str) -> None:
    """Stop offering a reason; leads that used it keep it in their history."""
    _set_active(kind, code, False)


@reasons_app.command("enable")
def reasons_enable(kind: ReasonKind, code: str) -> None:
    _set_active(kind, code, True)


@leads_app.command("state")
def leads_state(lead_id: int) -> None:
    """A lead's lifecycle state and the legacy columns it was read from."""
    from leadhub.db.models import Lead
    from leadhub.leads.workflow import current_state

    engine = make_engine(_settings().database_url)
    with session_scope(make_session_factory(engine)) as session:
        state = current_state(session, lead_id)
        lead = session.get_one(Lead, lead_id)
        out.print(
            f"lead {lead_id}: {state.value} (status={lead.status!r}, IS_LOST={lead.is_lost}, "
            f"is_qualified={lead.is_qualified}, attempts={lead.total_attempts}, "
            f"next follow-up={lead.next_followup_at.isoformat() if lead.next_followup_at else None})"
        )
    engine.dispose()
