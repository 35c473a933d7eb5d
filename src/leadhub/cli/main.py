"""`leadhub`: serve, migrate, inspect the inbox, load demo data. Errors print one red line, exit 1."""

from __future__ import annotations

import json
import logging
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from leadhub.config import Settings, get_settings
from leadhub.db.models import IntakeStatus
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.errors import LeadhubError
from leadhub.phones import mask

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="leadhub: lead-to-customer CRM",
)
db_app = typer.Typer(no_args_is_help=True, help="Create, adopt and upgrade the database.")
inbox_app = typer.Typer(no_args_is_help=True, help="The intake inbox: failed and pending enquiries.")
config_app = typer.Typer(no_args_is_help=True, help="Settings.")
channels_app = typer.Typer(
    no_args_is_help=True, help="Channel settings: Knowlarity numbers, Meta pages and forms."
)
sync_app = typer.Typer(
    no_args_is_help=True, help="Poll the vendors: the source of truth behind the webhooks."
)
app.add_typer(db_app, name="db")
app.add_typer(inbox_app, name="inbox")
app.add_typer(config_app, name="config")
app.add_typer(channels_app, name="channels")
app.add_typer(sync_app, name="sync")

out = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as error:  # pydantic ValidationError: show what is wrong, not a trace
        err.print(f"[red]error:[/red] invalid settings: {error}")
        raise typer.Exit(1) from error


def _fail(error: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {error}")
    return typer.Exit(1)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


@db_app.command("upgrade")
def db_upgrade(
    revision: str = "head",
    build_all: Annotated[
        bool,
        typer.Option(
            "--build-all",
            help="Also build, CONCURRENTLY, the staff-list indexes the upgrade leaves to a backfill still to "
            "come (a site that backfills with the --emit-sql script), and put back what a stopped backfill set "
            "aside",
        ),
    ] = False,
) -> None:
    """Create everything on an empty database, or adopt a legacy one: add what is missing, change no row."""
    from leadhub.db import migrate  # alembic: 0.35 s to import, which the other commands do not pay

    settings = _settings()
    try:
        migrate.upgrade(settings.database_url, revision)
        engine = make_engine(settings.database_url)
        current = migrate.current_revision(engine)
        built: list[str] = []
        if build_all:
            from leadhub.migration.set_aside import put_back

            built = put_back(engine)[0]
        engine.dispose()
    except LeadhubError as error:
        raise _fail(error) from error
    out.print(f"database at revision {current}" + (f"; built {', '.join(built)}" if built else ""))


@db_app.command("sql")
def db_sql(
    since: Annotated[str | None, typer.Option(help="Only the steps after this revision")] = None,
) -> None:
    """Print the SQL the upgrade would run, for review or the Supabase SQL editor (PostgreSQL dialect
    unless LEADHUB_DATABASE_URL is SQLite)."""
    from leadhub.db import migrate

    settings = _settings()
    url = settings.database_url
    typer.echo(migrate.upgrade_sql(url, since=since))


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the one this build expects."""
    from leadhub.db import migrate

    settings = _settings()
    engine = make_engine(settings.database_url)
    out.print(f"current: {migrate.current_revision(engine)}  expected: {migrate.head_revision()}")
    engine.dispose()


@inbox_app.command("list")
def inbox_list(
    status: Annotated[list[IntakeStatus] | None, typer.Option(help="failed, pending (default both)")] = None,
    source: str | None = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Failed and pending enquiries, with the reason each one is waiting."""
    from leadhub.integrations.inbox import list_events

    settings = _settings()
    engine = make_engine(settings.database_url)
    statuses = status or [IntakeStatus.FAILED, IntakeStatus.PENDING]
    with session_scope(make_session_factory(engine)) as session:
        events = list_events(session, statuses=statuses, source=source, limit=limit)
        rows = [
            {
                "id": e.id,
                "source": e.source,
                "external_id": e.external_id,
                "status": e.status,
                "attempts": e.attempts,
                "received_at": e.received_at.isoformat(),
                "phone": mask((e.intake or {}).get("phone")),
                "reason": e.reason,
            }
            for e in events
        ]
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "source", "external id", "status", "tries", "received", "phone", "reason")
    for row in rows:
        table.add_row(*(str(row[k] or "") for k in
                        ("id", "source", "external_id", "status", "attempts", "received_at", "phone", "reason")))  # fmt: skip
    out.print(table)
    out.print(f"{len(rows)} event(s){' (limit reached)' if len(rows) == limit else ''}")


@inbox_app.command("replay")
def inbox_replay(
    event_ids: Annotated[
        list[int] | None, typer.Argument(help="Event ids (default: every failed/pending)")
    ] = None,
    phone: Annotated[str | None, typer.Option(help="A corrected phone for the given event(s)")] = None,
) -> None:
    """Process failed or pending enquiries again."""
    from leadhub.leads.intake import replay

    settings = _settings()
    if phone is not None and not event_ids:
        raise _fail(ValueError("--phone needs the event id(s) it corrects"))
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        results = replay(
            session,
            event_ids=event_ids,
            phone=phone,
            region=settings.phone_region,
            policy=settings.lead_policy,
        )
    engine.dispose()
    for result in results:
        detail = f"lead {result.lead_id}" if result.lead_id else result.reason
        out.print(f"event {result.event_id}: {result.status.value} ({detail})")
    out.print(f"{len(results)} event(s) replayed")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve the API (OpenAPI at /docs). Stateless: run as many as you like against one database."""
    import uvicorn

    from leadhub.db import migrate

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    if current != migrate.head_revision():
        raise _fail(RuntimeError(f"database is at revision {current}; run `leadhub db upgrade` first"))
    uvicorn.run(
        "leadhub.api.app:app_factory",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
    )


@app.command()
def demo(
    leads: Annotated[int, typer.Option(min=1)] = 300,
    seed: int = 7,
) -> None:
    """Fill an EMPTY database with believable demo data (does nothing if leads exist)."""
    from leadhub.demo import is_empty, load_demo

    settings = _settings()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        if not is_empty(session):
            out.print("the database already has leads; demo data not loaded")
            return
        report = load_demo(session, leads=leads, seed=seed, region=settings.phone_region)
    engine.dispose()
    out.print(
        f"demo data: {report.branches} branches, {report.users} staff, {report.intakes} enquiries "
        f"({', '.join(f'{k} {v}' for k, v in sorted(report.outcomes.items()))})"
    )
    users = ", ".join(f"{role} {name}" for role, name in report.logins.items())
    out.print(f"demo logins (POST /api/auth/login), all with the password {report.password}: {users}")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Channel health: each poller's last run, last success and last error; the inbox backlog."""
    from leadhub.integrations.status import channel_status

    settings = _settings()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        report = channel_status(session)
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        if report["problems"]:
            raise typer.Exit(1)
        return
    table = Table("channel", "scope", "last run", "last success", "problem")
    for row in report["pollers"]:
        problem = f"[red]{row['error_kind']}: {row['last_error']}[/red]" if row["last_error"] else "ok"
        table.add_row(row["channel"], row["scope"], str(row["last_run_at"] or "never"),
                      str(row["last_success_at"] or "never"), problem)  # fmt: skip
    out.print(table)
    inbox = report["inbox"]
    out.print(f"inbox: {inbox['failed']} failed, {inbox['pending']} pending (see `leadhub inbox list`)")
    if report["problems"]:
        raise typer.Exit(1)


@config_app.command("init")
def config_init(path: Path = Path(".env")) -> None:
    """Write a .env with a fresh admin API key and token-signing secret (never overwrites a file)."""
    if path.exists():
        out.print(f"{path} exists; left as it is")
        return
    key = secrets.token_urlsafe(32)
    path.write_text(
        "# leadhub settings (see README). Keep this file private.\n"
        "LEADHUB_DATABASE_URL=sqlite:///./leadhub.db\n"
        f"LEADHUB_ADMIN_API_KEY={key}\n"
        f"LEADHUB_SECRET_KEY={secrets.token_urlsafe(48)}\n"
    )
    path.chmod(0o600)
    out.print(f"wrote {path} with a new admin API key and secret key (read them there; they are not printed)")


def run() -> None:
    """Console entry point: a failure is one red line and exit status 1, never a stack trace."""
    try:
        app()
    except LeadhubError as error:
        err.print(f"[red]error:[/red] {error.message}")
        sys.exit(1)
    except Exception as error:
        logging.getLogger("leadhub").debug("unexpected error", exc_info=True)
        err.print(f"[red]error:[/red] {type(error).__name__}: {error} (run with --verbose for details)")
        sys.exit(1)


# Command modules register themselves on `app` and the sub-apps above.
from leadhub.cli import assignment as _assignment  # noqa: E402, F401
from leadhub.cli import auth as _auth  # noqa: E402, F401
from leadhub.cli import knowlarity as _knowlarity  # noqa: E402, F401
from leadhub.cli import lifecycle as _lifecycle  # noqa: E402, F401
from leadhub.cli import meta as _meta_commands  # noqa: E402, F401
from leadhub.cli import migration as _migration  # noqa: E402, F401
