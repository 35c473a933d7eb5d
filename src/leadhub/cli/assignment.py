"""`leadhub assignment rules|add-rule|disable-rule|add-member|remove-member|assign`."""

from __future__ import annotations

import json
from datetime import time
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from leadhub.cli.main import _fail, _settings, app, out
from leadhub.db.models import AssignmentMember, AssignmentRule
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.errors import LeadhubError, ValidationFailed
from leadhub.leads.assignment import MODES, add_member, assign_leads, check_timezone
from leadhub.leads.intake import Channel

assignment_app = typer.Typer(no_args_is_help=True, help="Who works new leads: rules and rotations.")
app.add_typer(assignment_app, name="assignment")


def _time(text: str | None, option: str) -> time | None:
    if text is None:
        return None
    try:
        return time.fromisoformat(text)
    except ValueError as error:
        raise typer.BadParameter(f"{option} {text!r}: use HH:MM, e.g. 09:30") from error


@assignment_app.command("add-rule")
def add_rule(
    name: Annotated[str, typer.Argument(help="A name people recognise, e.g. 'Pune calls'")],
    channel: Annotated[
        str | None, typer.Option(help=f"Only this channel ({', '.join(c.value for c in Channel)})")
    ] = None,
    branch: Annotated[int | None, typer.Option(help="Only leads of this branch id")] = None,
    mode: Annotated[str, typer.Option(help="round_robin or weighted")] = "round_robin",
    days: Annotated[str, typer.Option(help="ISO weekdays it applies on, 1 = Monday: 123456")] = "1234567",
    start: Annotated[str | None, typer.Option("--from", help="Local start, HH:MM")] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Local end, HH:MM; earlier than --from crosses midnight")
    ] = None,
    timezone: Annotated[str | None, typer.Option(help="Default: LEADHUB_TIMEZONE (Asia/Kolkata)")] = None,
    priority: Annotated[int, typer.Option(help="Lower applies first")] = 100,
    sticky: Annotated[bool, typer.Option(help="A returning customer goes to their owner")] = True,
) -> None:
    """Add a rule; new leads it matches are rotated among its members (add them with add-member)."""
    settings = _settings()
    try:
        if channel is not None and channel not in {c.value for c in Channel}:
            raise ValidationFailed(f"unknown channel {channel!r}")
        if mode not in MODES:
            raise ValidationFailed(f"mode must be one of {', '.join(MODES)}")
        if not days or any(d not in "1234567" for d in days):
            raise ValidationFailed("days: ISO weekday digits 1 (Monday) to 7 (Sunday), e.g. 123456")
        if (start is None) != (end is None):
            raise ValidationFailed("give both --from and --to, or neither (all day)")
        zone = check_timezone(timezone or settings.timezone)
        engine = make_engine(settings.database_url)
        with session_scope(make_session_factory(engine)) as session:
            rule = AssignmentRule(name=name, channel=channel, branch_id=branch, mode=mode, active_days=days,
                                  active_from=_time(start, "--from"), active_to=_time(end, "--to"),
                                  timezone=zone, priority=priority, sticky=sticky)  # fmt: skip
            session.add(rule)
            session.flush()
            rule_id = rule.id
        engine.dispose()
    except LeadhubError as error:
        raise _fail(error) from error
    out.print(f"rule {rule_id} added; add people with: leadhub assignment add-member {rule_id} USER_ID")


@assignment_app.command("rules")
def list_rules(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every rule, in the order they are tried, with its members and their counts."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        rules = session.execute(
            select(AssignmentRule).order_by(AssignmentRule.priority, AssignmentRule.id)
        ).scalars()
        rows: list[dict[str, Any]] = []
        for r in rules:
            members = session.execute(
                select(AssignmentMember).where(AssignmentMember.rule_id == r.id).order_by(AssignmentMember.id)
            ).scalars()
            rows.append({
                "id": r.id, "name": r.name, "channel": r.channel, "branch_id": r.branch_id, "mode": r.mode,
                "days": r.active_days, "from": r.active_from.isoformat() if r.active_from else None,
                "to": r.active_to.isoformat() if r.active_to else None, "timezone": r.timezone,
                "priority": r.priority, "sticky": r.sticky, "active": r.is_active,
                "members": [{"user_id": m.user_id, "weight": m.weight, "assigned": m.assigned_count,
                             "active": m.is_active} for m in members],
            })  # fmt: skip
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "id", "name", "channel", "branch", "mode", "when", "priority", "members (user:weight:count)"
    )
    for row in rows:
        when = (
            f"{row['days']} {row['from']}-{row['to']} {row['timezone']}"
            if row["from"]
            else f"{row['days']} all day"
        )
        people = " ".join(f"{m['user_id']}:{m['weight']}:{m['assigned']}" + ("" if m["active"] else "(off)")
                          for m in row["members"])  # fmt: skip
        table.add_row(str(row["id"]) + ("" if row["active"] else " (off)"), row["name"], row["channel"] or "any",
                      str(row["branch_id"] or "any"), row["mode"], when, str(row["priority"]), people)  # fmt: skip
    out.print(table)


@assignment_app.command("disable-rule")
def disable_rule(rule_id: int) -> None:
    """Stop applying a rule (kept, with its counts)."""
    _update_rule(rule_id, active=False)


@assignment_app.command("enable-rule")
def enable_rule(rule_id: int) -> None:
    _update_rule(rule_id, active=True)


def _update_rule(rule_id: int, *, active: bool) -> None:
    settings = _settings()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        rule = session.get(AssignmentRule, rule_id)
        if rule is not None:
            rule.is_active = active
    engine.dispose()
    if rule is None:
        raise _fail(LookupError(f"no assignment rule {rule_id}"))
    out.print(f"rule {rule_id} {'enabled' if active else 'disabled'}")


@assignment_app.command("add-member")
def member_add(rule_id: int, user_id: int, weight: Annotated[int, typer.Option(min=1)] = 1) -> None:
    """Put a person in a rule's rotation (they start at the rotation's lowest count)."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            add_member(session, rule_id=rule_id, user_id=user_id, weight=weight)
    except LeadhubError as error:
        raise _fail(error) from error
    finally:
        engine.dispose()
    out.print(f"user {user_id} is in rule {rule_id}'s rotation (weight {weight})")


@assignment_app.command("remove-member")
def member_remove(rule_id: int, user_id: int) -> None:
    """Take a person out of a rotation (their count is kept if they come back)."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        member = _member(session, rule_id, user_id)
        if member is not None:
            member.is_active = False
    engine.dispose()
    if member is None:
        raise _fail(LookupError(f"user {user_id} is not in rule {rule_id}"))
    out.print(f"user {user_id} left rule {rule_id}'s rotation")


@assignment_app.command("assign")
def assign(
    lead_ids: Annotated[list[int], typer.Argument(help="Lead ids")],
    to: Annotated[int, typer.Option("--to", help="User id who takes them")],
    why: Annotated[str | None, typer.Option(help="Kept in each lead's activity")] = None,
) -> None:
    """Assign or reassign leads by hand (an operator's tool; the API checks the manager's rights)."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            done = assign_leads(session, lead_ids, to_user=to, by_user=None, why=why)
    except LeadhubError as error:
        raise _fail(error) from error
    finally:
        engine.dispose()
    out.print(f"{len(done)} lead(s) assigned to user {to}; {len(lead_ids) - len(done)} already theirs")


def _member(session: Session, rule_id: int, user_id: int) -> AssignmentMember | None:
    return session.execute(
        select(AssignmentMember).where(
            AssignmentMember.rule_id == rule_id, AssignmentMember.user_id == user_id
        )
    ).scalar_one_or_none()
