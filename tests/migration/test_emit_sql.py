"""`leadhub backfill-customers --emit-sql`: the script run through psql reaches the command's end state."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from pprint import pformat
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, inspect, text

from leadhub.db.migrate import head_revision
from leadhub.db.session import make_engine
from leadhub.migration.backfill import run_backfill
from leadhub.migration.emit_sql import emit_sql
from leadhub.migration.undo import undo_backfill
from leadhub.migration.verify import verify
from tests.conftest import _libpq, fresh_database, psql, requires_postgres
from tests.migration.test_backfill_fixture import _legacy

# Written at run time by either path, so they legitimately differ: when a row was last touched, when
# an inbox row was processed, and the run bookkeeping (backfill_runs: its stats and times).
VOLATILE = {"updated_at", "processed_at"}
BOOKKEEPING = {"alembic_version", "backfill_runs"}


def _every_row(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, volatile columns left out; backfill_log by content (its ids follow
    how many merge groups each transaction took, which differs between the two paths)."""
    inspector = inspect(engine)
    state: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name in sorted(set(inspector.get_table_names()) - BOOKKEEPING):
            columns = [c["name"] for c in inspector.get_columns(name) if c["name"] not in VOLATILE]
            if name == "backfill_log":
                columns.remove("id")
            select = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(text(f'SELECT {select} FROM "{name}"')).all()
            state[name] = sorted(tuple(map(repr, r)) for r in rows)
    return state


def _differences(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> dict[str, Any]:
    """Per table, a few rows only one side has: a readable failure instead of two huge dicts."""
    out = {}
    for name in sorted(set(a) | set(b)):
        left, right = set(a.get(name, [])), set(b.get(name, []))
        if left != right:
            out[name] = {"only_left": sorted(left - right)[:3], "only_right": sorted(right - left)[:3]}
    return out


def _run_script(url: str, script: Path) -> None:
    """As an operator would: psql, stop at the first error."""
    done = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", _libpq(url), "-f", str(script)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr


def _run_as_one_query(url: str, script: Path) -> None:
    """As the Supabase SQL editor does: the whole text sent as one query string, so its statements
    share one implicit transaction (where a DO block may not COMMIT)."""
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(script.read_text(encoding="utf-8"))


RUNNERS: dict[str, Callable[[str, Path], None]] = {"psql": _run_script, "one-query": _run_as_one_query}


def _copy(source_url: str, target_url: str, tmp_path: Path) -> None:
    """The same legacy database twice (the fixture stamps rows with now(), so building it twice differs)."""
    dump = tmp_path / "legacy.sql"
    subprocess.run(["pg_dump", "-O", "-x", "-f", str(dump), "-d", _libpq(source_url)], check=True)
    psql(target_url, "-f", str(dump))


@requires_postgres
@pytest.mark.parametrize(
    ("guide", "runner"),
    [(False, "psql"), (True, "psql"), (True, "one-query")],
    ids=["legacy-psql", "guide-backfilled-psql", "guide-backfilled-editor"],
)
def test_the_script_and_the_command_reach_the_same_end_state(
    tmp_path: Path, guide: bool, runner: str
) -> None:
    run = RUNNERS[runner]
    with fresh_database(tmp_path) as command_url, fresh_database(tmp_path) as script_url:
        by_command = _legacy(command_url, 3000, guide)
        _copy(command_url, script_url, tmp_path)
        by_script = make_engine(script_url)
        original = _every_row(by_script)
        assert original == _every_row(by_command)
        script = tmp_path / "backfill.sql"
        emit_sql(by_script, script, batch_size=500)  # same batches: same customer ids
        assert _every_row(by_script) == original  # writing the script changes nothing

        run_backfill(by_command, batch_size=500)
        run(script_url, script)
        after = _every_row(by_script)
        diff = _differences(after, _every_row(by_command))
        assert not diff, pformat(diff, width=200)
        assert verify(by_script).ok

        run(script_url, script)  # a second run changes nothing
        diff = _differences(_every_row(by_script), after)
        assert not diff, pformat(diff, width=200)

        undo_backfill(by_script, batch_size=400)  # `--undo` after the script restores the original
        diff = _differences(_every_row(by_script), original)
        assert not diff, pformat(diff, width=200)
        by_command.dispose()
        by_script.dispose()


@requires_postgres
def test_a_phone_the_old_app_edits_after_a_run_ends_the_same_by_script_and_by_command(tmp_path: Path) -> None:
    edit = (
        "UPDATE leads_master SET phone_number_normalized = '098765 00099' "
        "WHERE id = (SELECT min(id) FROM leads_master WHERE customer_id IS NOT NULL) RETURNING id"
    )
    with fresh_database(tmp_path) as command_url, fresh_database(tmp_path) as script_url:
        by_command = _legacy(command_url, 600, False)
        _copy(command_url, script_url, tmp_path)
        by_script = make_engine(script_url)
        run_backfill(by_command, batch_size=200)
        emit_sql(by_script, tmp_path / "first.sql", batch_size=200)
        _run_script(script_url, tmp_path / "first.sql")
        assert not _differences(_every_row(by_script), _every_row(by_command))
        edited = []
        for engine in (by_command, by_script):
            with engine.begin() as conn:
                edited.append(conn.execute(text(edit)).scalar_one())
        assert edited[0] == edited[1]
        run_backfill(by_command, batch_size=200)
        emit_sql(by_script, tmp_path / "again.sql", batch_size=200)  # the new string needs a new mapping
        _run_script(script_url, tmp_path / "again.sql")
        diff = _differences(_every_row(by_script), _every_row(by_command))
        assert not diff, pformat(diff, width=200)
        with by_script.connect() as conn:
            phone = conn.execute(text(
                "SELECT phone_number_normalized, phone_number_legacy FROM leads_master WHERE id = :id"), {"id": edited[0]}
            ).one()  # fmt: skip
        assert tuple(phone) == ("+919876500099", "098765 00099")
        by_command.dispose()
        by_script.dispose()


def _leadhub(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEADHUB_DATABASE_URL": url}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["leadhub", *args], env=env, capture_output=True, text=True, check=False)


def test_emit_sql_on_sqlite_says_it_is_postgresql_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'site.db'}"
    assert _leadhub(url, "db", "upgrade").returncode == 0
    script = tmp_path / "backfill.sql"
    result = _leadhub(url, "backfill-customers", "--emit-sql", str(script))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "PostgreSQL script" in result.stderr and "sqlite" in result.stderr
    assert not script.exists()


@requires_postgres
def test_the_script_refuses_a_wrong_revision_or_a_stale_mapping_and_changes_nothing(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        engine = _legacy(url, 300, guide=True)
        script = tmp_path / "backfill.sql"
        result = _leadhub(url, "backfill-customers", "--emit-sql", str(script))
        assert result.returncode == 0, result.stderr
        assert "INSERT INTO backfill_script_phones" in script.read_text(encoding="utf-8")
        original = _every_row(engine)

        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
        failed = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", _libpq(url), "-f", str(script)],
                                capture_output=True, text=True)  # fmt: skip
        assert failed.returncode != 0 and "leadhub db upgrade" in failed.stderr
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()})
            # a legacy writer adds a lead in a format the script has never seen
            conn.execute(
                text("UPDATE leads_master SET phone_number_normalized = '098 7654 3210' WHERE id = 1")
            )
        stale = _every_row(engine)
        assert stale != original
        failed = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", _libpq(url), "-f", str(script)],
                                capture_output=True, text=True)  # fmt: skip
        assert failed.returncode != 0 and "not in this script's mapping" in failed.stderr
        assert _differences(_every_row(engine), stale) == {}
        engine.dispose()
