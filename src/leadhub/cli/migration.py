"""`leadhub backfill-customers` and `leadhub verify`: move a legacy database to customers."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from leadhub.cli.main import _settings, app, err, out
from leadhub.db.session import make_engine
from leadhub.migration.set_aside import Mode

log = logging.getLogger("leadhub.backfill")


class _Reporter:
    """A rich progress bar with rows/s and ETA on a terminal; a plain log line every few seconds otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.last = 0.0
        if enabled and sys.stderr.isatty():
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                                TextColumn("{task.speed} rows/s"), TimeRemainingColumn(), console=err)  # fmt: skip
            self.bar.start()

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if self.bar is not None:
            if phase not in self.tasks:
                self.tasks[phase] = self.bar.add_task(phase, total=total)
            self.bar.update(self.tasks[phase], completed=done, total=total)
        elif time.monotonic() - self.last > 2:
            self.last = time.monotonic()
            log.info("%s: %s of %s rows", phase, f"{done:,}", f"{total:,}" if total else "?")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _summary(title: str, data: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    for key, value in data.items():
        table.add_row(
            key.replace("_", " "), json.dumps(value) if isinstance(value, dict | list) else str(value)
        )
    out.print(table)


@app.command("backfill-customers")
def backfill_customers(
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=100,
            max=100_000,
            help="Rows per batch; by default the PostgreSQL leads phase sizes batches by time",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; write nothing")
    ] = False,
    undo: Annotated[
        bool, typer.Option("--undo", help="Restore the database as it was before the backfill")
    ] = False,
    report_invalid: Annotated[
        Path | None, typer.Option(help="CSV of unlinked leads: lead id, value, reason")
    ] = None,
    emit_sql: Annotated[
        Path | None,
        typer.Option(
            "--emit-sql",
            help="Write the backfill as a reviewable SQL script for psql / the Supabase SQL editor "
            "(PostgreSQL only); change nothing",
        ),
    ] = None,
    set_aside: Annotated[
        Mode,
        typer.Option(
            "--set-aside",
            help="PostgreSQL: drop leadhub's staff-list indexes and the foreign keys the lead writes check "
            "while the leads are written, and build them again (CONCURRENTLY, then validated) at the end. "
            "auto: when at least 100,000 leads are still to be backfilled; always; never (use never once "
            "staff work in leadhub, whose lists read those indexes)",
        ),
    ] = Mode.AUTO,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Canonicalise legacy phones, repair duplicate customers, link every lead. Online, batched,
    resumable after a crash (run it again), idempotent (a second run changes nothing)."""
    from leadhub.migration.backfill import plan_backfill, run_backfill
    from leadhub.migration.undo import undo_backfill
    from leadhub.migration.verify import unlinked_leads

    settings = _settings()
    engine = make_engine(settings.database_url)
    reporter = _Reporter(enabled=not as_json)
    try:
        if emit_sql is not None:
            from leadhub.migration.emit_sql import emit_sql as write_script

            emitted = write_script(
                engine, emit_sql, region=settings.phone_region, batch_size=batch_size or 5000
            )
            result: dict[str, Any] = {"emit_sql": str(emit_sql), "revision": emitted.revision, "phone_strings": emitted.phones,
                      "name_and_city_strings": emitted.texts, "provider_times": emitted.times}  # fmt: skip
        elif dry_run:
            result = {"dry_run": True, **plan_backfill(engine, region=settings.phone_region)}
        elif undo:
            result = undo_backfill(engine, batch_size=batch_size or 5000, progress=reporter).to_json()
        else:
            started = time.perf_counter()
            report = run_backfill(engine, batch_size=batch_size, region=settings.phone_region, progress=reporter,
                                  set_aside_mode=set_aside)  # fmt: skip
            result = {**report.to_json(), "seconds": round(time.perf_counter() - started, 2)}
            if report_invalid is not None:
                result["unlinked_by_reason"] = unlinked_leads(
                    engine, region=settings.phone_region, report_file=report_invalid
                )
                result["report_invalid"] = str(report_invalid)
    finally:
        reporter.close()
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    if emit_sql is not None:
        _summary("backfill script written (nothing changed; review it, then run it with psql)", result)
        return
    _summary("backfill (dry run)" if dry_run else "undo" if undo else "backfill", result)
    if not dry_run and not undo and not result["changed_anything"]:
        out.print("nothing to change: the database was already backfilled")


@app.command("verify")
def verify_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the customer invariants; exit status 1 when one fails (with sample ids)."""
    from leadhub.migration.verify import verify

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        report = verify(engine, region=settings.phone_region)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        table = Table("check", "value", "ok", "sample ids")
        for check in report.checks:
            table.add_row(check.name, f"{check.value:,}", "" if not check.invariant else ("yes" if check.ok else "[red]NO[/red]"),
                          ", ".join(map(str, check.samples)))  # fmt: skip
        out.print(table)
        out.print(f"unlinked leads by reason: {json.dumps(report.unlinked_by_reason)}")
    if not report.ok:
        raise typer.Exit(1)
