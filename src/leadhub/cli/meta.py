"""`leadhub channels meta ...` (pages, tokens, forms, mappings) and `leadhub sync meta`.

Tokens are read from a hidden prompt or the environment, never echoed, never printed back.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from leadhub.cli.main import _fail, _settings, channels_app, out, sync_app
from leadhub.db.models import MetaForm, MetaPage
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.errors import LeadhubError
from leadhub.integrations.meta import service
from leadhub.integrations.meta.sync import make_client, run_sync

meta_app = typer.Typer(no_args_is_help=True, help="Meta lead ads: pages, page tokens, forms and mappings.")
channels_app.add_typer(meta_app, name="meta")


@meta_app.command("add-page")
@meta_app.command("set-token")
def add_page(
    page_id: str,
    token: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            envvar="LEADHUB_META_PAGE_TOKEN",
            help="The page access token (prompted, hidden)",
        ),
    ],
    name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Store a page and its access token, or replace an expired token (clears the page's problem)."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            service.save_page(session, page_id=page_id, token=token.strip(), name=name)
    finally:
        engine.dispose()
    out.print(f"page {page_id} saved (token stored, not shown)")


@meta_app.command("forms")
def forms(page_id: str) -> None:
    """Discover the page's lead forms and their question keys from Graph."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with make_client(settings) as client, session_scope(make_session_factory(engine)) as session:
            found = service.discover_forms(session, client, page_id=page_id)
            rows = [(f.form_id, f.name or "", f.status or "", ", ".join(q.get("key", "") for q in f.questions or []))
                    for f in found]  # fmt: skip
    except LeadhubError as error:
        raise _fail(error) from error
    finally:
        engine.dispose()
    table = Table("form", "name", "status", "question keys")
    for row in rows:
        table.add_row(*row)
    out.print(table)


@meta_app.command("map-form")
def map_form(
    form_id: str,
    branch: Annotated[int | None, typer.Option(help="Branch id the form's leads go to")] = None,
    source_label: Annotated[str | None, typer.Option(help="Recorded on each lead, e.g. a campaign")] = None,
    question: Annotated[
        list[str] | None,
        typer.Option(help="KEY=TARGET (name, first_name, last_name, phone, email, city, ignore); repeatable"),
    ] = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable", help="Include in `sync meta`")] = None,
) -> None:
    """Set a form's branch, source label and custom question mapping."""
    questions = {}
    for item in question or []:
        key, sep, target = item.rpartition("=")
        if not sep or not key:
            raise _fail(ValueError(f"--question {item!r}: use KEY=TARGET"))
        questions[key] = target
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            form = service.map_form(session, form_id=form_id, branch_id=branch, source_label=source_label,
                                    questions=questions, sync_enabled=enable)  # fmt: skip
            summary = json.dumps({"branch_id": form.branch_id, "source_label": form.source_label,
                                  "field_map": form.field_map, "sync": form.sync_enabled})  # fmt: skip
    except LeadhubError as error:
        raise _fail(error) from error
    finally:
        engine.dispose()
    out.print(f"form {form_id}: {summary}")


@meta_app.command("list")
def list_pages() -> None:
    """Pages (token health, never the token) and forms."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        pages = [(p.page_id, p.name or "", p.token_error or "ok")
                 for p in session.execute(select(MetaPage).order_by(MetaPage.page_id)).scalars()]  # fmt: skip
        forms = [(f.form_id, f.page_id, f.name or "", str(f.branch_id or ""), "yes" if f.sync_enabled else "no")
                 for f in session.execute(select(MetaForm).order_by(MetaForm.form_id)).scalars()]  # fmt: skip
    engine.dispose()
    table = Table("page", "name", "token")
    for row in pages:
        table.add_row(*row)
    out.print(table)
    table = Table("form", "page", "name", "branch", "sync")
    for form_row in forms:
        table.add_row(*form_row)
    out.print(table)


def _interval(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError) as error:
        raise typer.BadParameter(f"{text!r}: use e.g. 90s, 10m, 1h") from error


@sync_app.command("meta")
def sync_meta(
    form: Annotated[str | None, typer.Option("--form", help="Only this form")] = None,
    since: Annotated[datetime | None, typer.Option(help="Read leads created after this (UTC)")] = None,
    every: Annotated[
        str | None, typer.Option(help="Run again every interval (e.g. 10m) until stopped")
    ] = None,
    reconcile: Annotated[
        bool | None,
        typer.Option("--reconcile/--no-reconcile", help="Re-read the last 48 h (default: hourly)"),
    ] = None,
) -> None:
    """Poll Meta lead forms through the shared intake (one poller at a time)."""
    settings = _settings()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    pause = _interval(every) if every else None
    engine = make_engine(settings.database_url)
    problems = False
    try:
        while True:
            try:
                report = run_sync(engine, settings, form_id=form, since=since, reconcile=reconcile)
            except LeadhubError as error:
                raise _fail(error) from error
            if report.pending.processed or report.pending.waiting:
                out.print(
                    f"webhook leads fetched: {report.pending.processed}, still waiting: {report.pending.waiting}"
                )
            problems = False
            for item in report.forms:
                counts = ", ".join(f"{k} {v}" for k, v in sorted(item.outcomes.items())) or "nothing new"
                line = f"form {item.form_id}: {item.fetched} read in {item.pages} page(s): {counts}"
                if item.reconciled:
                    line += f" (reconciled last {settings.meta_reconcile_hours} h)"
                out.print(line)
                if item.error:
                    problems = True
                    out.print(f"  [red]{item.error_kind}: {item.error}[/red]")
            if pause is None:
                break
            since = None  # only the first run reads from --since
            time.sleep(pause)
    finally:
        engine.dispose()
    if problems:
        raise typer.Exit(1)
