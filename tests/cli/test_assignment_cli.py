from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from leadhub.cli.main import app
from leadhub.db.models import Lead, User
from leadhub.db.session import session_scope
from leadhub.leads.intake import Channel, Intake, ingest

runner = CliRunner()


@pytest.fixture
def env(
    database_url: str, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> sessionmaker[Session]:
    monkeypatch.setenv("LEADHUB_DATABASE_URL", database_url)
    return factory


def test_an_operator_sets_up_a_night_rotation_and_new_calls_follow_it(env: sessionmaker[Session]) -> None:
    with session_scope(env) as s:
        users = [User(username=n, role="CRE", status=True) for n in ("asha", "ravi")]
        s.add_all(users)
        s.flush()
        asha, ravi = (u.user_id for u in users)
    added = runner.invoke(app, ["assignment", "add-rule", "All calls", "--channel", "knowlarity"])
    assert added.exit_code == 0, added.output
    for user in (asha, ravi):
        assert (
            runner.invoke(app, ["assignment", "add-member", "1", str(user), "--weight", "1"]).exit_code == 0
        )
    listed = json.loads(runner.invoke(app, ["assignment", "rules", "--json"]).output)
    assert listed[0]["channel"] == "knowlarity" and [m["user_id"] for m in listed[0]["members"]] == [
        asha,
        ravi,
    ]
    with session_scope(env) as s:
        ingest(s, Intake(source=Channel.KNOWLARITY, phone="+919811111111", external_id="c1"))
        ingest(s, Intake(source=Channel.META, phone="+919822222222", external_id="m1"))
    with env() as s:
        owners = dict(s.execute(select(Lead.external_lead_id, Lead.assigned_to)).all())
    assert owners == {"c1": asha, "m1": None}  # the rule is for calls only

    bad = runner.invoke(app, ["assignment", "add-rule", "x", "--from", "22:00"])
    assert bad.exit_code == 1 and "--from and --to" in bad.output
    bad = runner.invoke(app, ["assignment", "add-rule", "x", "--timezone", "India/Pune"])
    assert bad.exit_code == 1 and "unknown time zone" in bad.output
    moved = runner.invoke(app, ["assignment", "assign", "1", "--to", str(ravi), "--why", "rebalance"])
    assert moved.exit_code == 0 and "1 lead(s) assigned" in moved.output
