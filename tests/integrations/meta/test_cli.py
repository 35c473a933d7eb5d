"""The operator's path, as subprocesses: store a page, discover forms, map one, sync, read status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from leadhub.db.models import Lead
from leadhub.db.session import make_engine, make_session_factory
from leadhub.integrations.meta.fake_server import running_fake_graph
from tests.conftest import fresh_database

PAGE, FORM, TOKEN = "100000000000009", "300000000000009", "cli-page-token-secret"


def _leadhub(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(["leadhub", *args], env=env, capture_output=True, text=True, check=check)


def test_add_page_discover_map_sync_and_status(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url, running_fake_graph() as graph:
        graph.add_page(PAGE, TOKEN)
        graph.add_form(FORM, PAGE, custom=("what_is_your_budget?", "your_mobile"))
        now = int(time.time())
        for i in range(5):
            graph.add_lead(FORM, phone=f"+9197{i:08d}", created_time=now - 60 + i, variant=i,
                           answers={"what_is_your_budget?": ["10-12 lakh"], "preferred_time": None})  # fmt: skip
        env = {
            "LEADHUB_DATABASE_URL": url,
            "LEADHUB_META_GRAPH_URL": graph.url,
            "LEADHUB_META_FETCH_ATTEMPTS": "1",
        }
        _leadhub(env, "db", "upgrade")
        added = _leadhub({**env, "LEADHUB_META_PAGE_TOKEN": TOKEN}, "channels", "meta", "add-page", PAGE,
                         "--name", "Acme Motors")  # fmt: skip
        assert "saved" in added.stdout and TOKEN not in added.stdout + added.stderr
        assert FORM in _leadhub(env, "channels", "meta", "forms", PAGE).stdout
        mapped = _leadhub(env, "channels", "meta", "map-form", FORM, "--source-label", "Diwali",
                          "--question", "your_mobile=phone")  # fmt: skip
        assert "your_mobile" in mapped.stdout
        bad = _leadhub(env, "channels", "meta", "map-form", FORM, "--question", "x=shoe_size", check=False)
        assert bad.returncode == 1 and "unknown target" in bad.stderr

        synced = _leadhub(env, "sync", "meta")
        assert "created 5" in synced.stdout and TOKEN not in synced.stdout + synced.stderr

        graph.faults.expired_tokens.add(TOKEN)
        graph.add_lead(FORM, phone="+919700000099", created_time=now)
        failed = _leadhub(env, "sync", "meta", "--reconcile", check=False)
        assert failed.returncode == 1 and "token_expired" in failed.stdout
        assert _leadhub(env, "status", check=False).returncode == 1
        status = _leadhub(env, "status", "--json", check=False)
        assert any(f"set-token {PAGE}" in p for p in json.loads(status.stdout)["problems"])
        assert TOKEN not in status.stdout + failed.stdout + failed.stderr

        engine = make_engine(url)
        with make_session_factory(engine)() as s:
            leads = s.execute(select(Lead)).scalars().all()
            assert len(leads) == 5
            payload = leads[0].raw_payload
            assert payload["meta"]["source_label"] == "Diwali"
            assert payload["answers"] == {"what_is_your_budget?": ["10-12 lakh"], "preferred_time": []}
        engine.dispose()
