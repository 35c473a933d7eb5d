"""`leadhub channels knowlarity ...` and `leadhub sync knowlarity` as an operator runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from leadhub.cli.knowlarity import parse_every
from leadhub.db.models import Branch, Call, Lead
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.integrations.knowlarity.fake_server import FakeKnowlarity, fake_calls
from tests.conftest import fresh_database

from .test_sync import APP_KEY, SR_KEY, T0, UNTIL


def _leadhub(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LEADHUB_DATABASE_URL": url, **(env or {})}
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    return subprocess.run(["leadhub", *args], env=full, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30s", 30), ("5m", 300), ("1h", 3600)])
def test_parse_every(text: str, seconds: int) -> None:
    assert parse_every(text) == seconds


def test_numbers_then_sync_from_the_fake_knowlarity(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url, FakeKnowlarity(app_key=APP_KEY, sr_key=SR_KEY) as fake:
        assert _leadhub(url, "db", "upgrade").returncode == 0
        engine = make_engine(url)
        factory = make_session_factory(engine)
        with session_scope(factory) as s:
            branch = Branch(name="Pune Baner")
            s.add(branch)
            s.flush()
            branch_id = branch.id
        added = _leadhub(url, "channels", "knowlarity", "add", "08000000010", "--branch", str(branch_id),
                         "--campaign", "diwali")  # fmt: skip
        assert added.returncode == 0 and "+918000000010" in added.stdout
        assert _leadhub(url, "channels", "knowlarity", "add", "12", "--branch", "1").returncode == 1
        listed = json.loads(_leadhub(url, "channels", "knowlarity", "list", "--json").stdout)
        assert listed == [{"number": "+918000000010", "branch_id": branch_id, "source_id": None,
                           "campaign": "diwali", "label": None}]  # fmt: skip

        fake.add_calls(fake_calls(12, start=T0, numbers=("+918000000010", "+918000000099")))
        env = {
            "LEADHUB_KNOWLARITY_API_URL": fake.base_url,
            "LEADHUB_KNOWLARITY_APP_KEY": APP_KEY,
            "LEADHUB_KNOWLARITY_SR_KEY": SR_KEY,
        }
        window = ("--since", T0.isoformat(), "--until", UNTIL.isoformat())
        synced = _leadhub(url, "sync", "knowlarity", *window, env=env)
        assert synced.returncode == 0, synced.stderr
        assert "12 records" in synced.stdout and "complete" in synced.stdout
        again = _leadhub(url, "sync", "knowlarity", *window, env=env)
        assert "duplicate 12" in again.stdout
        with factory() as s:
            assert s.execute(select(func.count()).select_from(Call)).scalar_one() == 12
            mapped = s.execute(select(func.count()).where(Lead.branch_id == branch_id)).scalar_one()
            unmapped = s.execute(select(func.count()).where(Lead.branch_id.is_(None))).scalar_one()
        assert mapped > 0 and unmapped > 0

        no_keys = _leadhub(url, "sync", "knowlarity")
        assert no_keys.returncode == 1 and "LEADHUB_KNOWLARITY_APP_KEY" in no_keys.stderr
        assert _leadhub(url, "channels", "knowlarity", "remove", "+918000000010").returncode == 0
        assert _leadhub(url, "channels", "knowlarity", "remove", "+918000000010").returncode == 1
        engine.dispose()
