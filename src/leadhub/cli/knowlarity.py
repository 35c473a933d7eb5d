"""`leadhub channels knowlarity add|list|remove` and `leadhub sync knowlarity`, registered on main's sub-apps."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from leadhub.cli.main import _fail, _settings, channels_app, err, out, sync_app
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.errors import LeadhubError
from leadhub.integrations.knowlarity.numbers import add_number, list_numbers, remove_number
from leadhub.integrations.knowlarity.payloads import parse_time

knowlarity_app = typer.Typer(no_args_is_help=True, help="Knowlarity virtual numbers and their branches.")
channels_app.add_typer(knowlarity_app, name="knowlarity")

_EVERY = re.compile(r"^(\d+)\s*([smh]?)$")


def parse_every(text: str) -> int:
    """Seconds from `90`, `30s`, `5m` or `1h`."""
    match = _EVERY.match(text.strip().lower())
    if match is None or int(match[1]) == 0:
        raise typer.BadParameter(f"{text!r}: use a positive number with s, m or h, e.g. 5m")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    value = parse_time(text.replace("T", " ") if len(text) > 10 else f"{text} 00:00:00")
    if value is None:
        raise typer.BadParameter(
            f"{option} {text!r}: use YYYY-MM-DD[ HH:MM[:SS]][+05:30] (naive means India time)"
        )
    return value


@knowlarity_app.command("add")
def number_add(
    number: Annotated[str, typer.Argument(help="The virtual number, e.g. +918000000010")],
    branch: Annotated[int | None, typer.Option(help="Branch id its calls belong to")] = None,
    source: Annotated[int | None, typer.Option(help="Source id for new leads (a campaign number)")] = None,
    campaign: Annotated[str | None, typer.Option(help="Campaign label kept with each call")] = None,
    label: Annotated[str | None, typer.Option(help="A note for people")] = None,
) -> None:
    """Map a number to a branch (and optionally a source or campaign); replaces an earlier mapping."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            row = add_number(session, number=number, branch_id=branch, source_id=source, campaign=campaign,
                             label=label, region=settings.phone_region)  # fmt: skip
            mapped = row.number
    except LeadhubError as error:
        raise _fail(error) from error
    finally:
        engine.dispose()
    out.print(f"{mapped} -> branch {branch if branch is not None else '(none: leads will need a branch)'}")


@knowlarity_app.command("list")
def number_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every mapped number."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        rows = [
            {"number": n.number, "branch_id": n.branch_id, "source_id": n.source_id, "campaign": n.campaign,
             "label": n.label}
            for n in list_numbers(session)
        ]  # fmt: skip
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("number", "branch", "source", "campaign", "label")
    for row in rows:
        table.add_row(*(str(row[k] if row[k] is not None else "") for k in ("number", "branch_id", "source_id", "campaign", "label")))  # fmt: skip
    out.print(table)
    out.print(
        f"{len(rows)} number(s); calls to any other number still make leads, flagged as needing a branch"
    )


@knowlarity_app.command("remove")
def number_remove(number: Annotated[str, typer.Argument()]) -> None:
    """Forget a number's mapping (its calls will still make leads, flagged)."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        removed = remove_number(session, number=number, region=settings.phone_region)
    engine.dispose()
    if not removed:
        raise _fail(LookupError(f"{number} is not mapped"))
    out.print(f"removed {number}")


@sync_app.command("knowlarity")
def sync_knowlarity(
    since: Annotated[
        str | None, typer.Option(help="Window start (default: checkpoint minus overlap)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Window end (default: now)")] = None,
    every: Annotated[str | None, typer.Option(help="Keep polling at this interval, e.g. 5m")] = None,
) -> None:
    """Poll Knowlarity's call log into leads (the source of truth behind the webhook)."""
    from leadhub.integrations.knowlarity.sync import PollerBusy, run_sync

    settings = _settings()
    start, end = _when(since, "--since"), _when(until, "--until")
    interval = parse_every(every) if every else None
    engine = make_engine(settings.database_url)
    try:
        while True:
            try:
                report = run_sync(engine, settings, since=start, until=end)
            except PollerBusy as busy:
                err.print(f"[yellow]{busy.message}[/yellow]")
                if interval is None:
                    raise typer.Exit(0) from busy
            except LeadhubError as error:
                raise _fail(error) from error
            except Exception as error:
                if interval is None:
                    raise
                # A long-running poller outlives a database restart: report and try again next round.
                err.print(f"[red]error:[/red] {type(error).__name__}; retrying in {interval}s")
            else:
                out.print(report.summary())
                if interval is None and report.error:
                    raise typer.Exit(1)
            if interval is None:
                return
            start = end = None  # later rounds follow the checkpoint
            time.sleep(interval)
    finally:
        engine.dispose()
