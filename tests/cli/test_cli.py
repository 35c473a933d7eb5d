"""The CLI as an operator runs it, as a subprocess against a database of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from leadhub.db.models import Customer, IntakeEvent, Lead
from leadhub.db.session import make_engine, make_session_factory
from tests.conftest import fresh_database


def _leadhub(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEADHUB_DATABASE_URL": url}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["leadhub", *args], env=env, capture_output=True, text=True, check=check)


def test_upgrade_demo_inbox_and_replay(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        assert "database at revision" in _leadhub(url, "db", "upgrade").stdout
        demo = _leadhub(url, "demo", "--leads", "200").stdout
        assert "200 enquiries" in demo
        # demo staff can log in, and new leads were rotated among each branch's CREs
        assert "demo logins" in demo and "CRE cre." in demo
        assert "already has leads" in _leadhub(url, "demo").stdout  # never loads twice

        engine = make_engine(url)
        with make_session_factory(engine)() as s:
            customers = s.execute(select(func.count()).select_from(Customer)).scalar_one()
            leads = s.execute(select(func.count()).select_from(Lead)).scalar_one()
            unlinked = s.execute(select(func.count()).where(Lead.customer_id.is_(None))).scalar_one()
            failed = s.execute(select(func.count()).where(IntakeEvent.status == "failed")).scalar_one()
        assert 0 < customers < leads and unlinked == 0 and failed > 0

        listed = json.loads(_leadhub(url, "inbox", "list", "--json").stdout)
        assert len(listed) == failed and all(r["status"] == "failed" and r["reason"] for r in listed)
        # masked: no listed phone shows more than its last two digits
        assert all(sum(ch.isdigit() for ch in (r["phone"] or "")) <= 2 for r in listed)

        event_id = str(listed[0]["id"])
        replayed = _leadhub(url, "inbox", "replay", event_id, "--phone", "+91 99887 76655").stdout
        assert "created" in replayed or "attached" in replayed
        remaining = json.loads(_leadhub(url, "inbox", "list", "--json").stdout)
        assert len(remaining) == failed - 1
        engine.dispose()


def test_errors_are_one_red_line_not_a_trace(tmp_path: Path) -> None:
    result = _leadhub("mysql://x@localhost/y", "db", "upgrade", check=False)
    assert result.returncode == 1
    assert "unsupported database URL scheme" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = _leadhub(f"sqlite:///{tmp_path / 'empty.db'}", "serve", check=False)
    assert result.returncode == 1 and "leadhub db upgrade" in result.stderr


def test_status_reports_channel_problems_and_exits_non_zero(tmp_path: Path) -> None:
    from leadhub.db.models import SyncCheckpoint

    with fresh_database(tmp_path) as url:
        _leadhub(url, "db", "upgrade")
        healthy = _leadhub(url, "status", "--json")
        assert json.loads(healthy.stdout)["problems"] == []
        engine = make_engine(url)
        with make_session_factory(engine)() as s:
            s.add(SyncCheckpoint(channel="meta", scope="form-1", last_error="token expired: reconnect the page",
                                 error_kind="token_expired"))  # fmt: skip
            s.commit()
        engine.dispose()
        broken = _leadhub(url, "status", check=False)
        assert broken.returncode == 1
        assert "token_expired" in broken.stdout and "reconnect the page" in broken.stdout


def test_reasons_are_managed_from_the_cli_and_a_lead_state_is_shown(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        _leadhub(url, "db", "upgrade")
        listed = json.loads(_leadhub(url, "reasons", "list", "--kind", "lost", "--json").stdout)
        assert {"kind": "lost", "code": "PriceConcern", "label": "Price concern", "active": True} in listed
        assert (
            "added lost reason ColourUnavailable"
            in _leadhub(url, "reasons", "add", "lost", "ColourUnavailable", "Colour not available").stdout
        )
        _leadhub(url, "reasons", "disable", "lost", "ColourUnavailable")
        active = json.loads(_leadhub(url, "reasons", "list", "--kind", "lost", "--json").stdout)
        assert "ColourUnavailable" not in [r["code"] for r in active]
        again = _leadhub(url, "reasons", "add", "lost", "ColourUnavailable", "x", check=False)
        assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr

        engine = make_engine(url)
        with make_session_factory(engine)() as s:
            lead = Lead(status="Lost - Price Concern", is_lost=True)
            s.add(lead)
            s.commit()
            lead_id = lead.id
        engine.dispose()
        assert f"lead {lead_id}: lost" in _leadhub(url, "leads", "state", str(lead_id)).stdout
        missing = _leadhub(url, "leads", "state", "999999", check=False)
        assert missing.returncode == 1 and "no lead with id 999999" in missing.stderr
