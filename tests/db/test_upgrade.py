"""`leadhub db upgrade` on an empty database and on adopted legacy databases, run twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import leadhub.db.models  # noqa: F401
from leadhub.db import migrate
from leadhub.db.base import Base
from leadhub.db.session import make_engine
from tests.conftest import SHARED, _libpq, fresh_database, psql, requires_postgres

LEGACY_TABLES = [
    "users",
    "branches",
    "branch_members",
    "sources",
    "leads_master",
    "leads_qualification",
    "leads_logs",
    "lead_sources_history",
]


def _fixture(url: str, *, n: int, guide_backfill: bool) -> None:
    fixture = SHARED / "legacy" / "fixture.sql"
    if not fixture.exists():
        pytest.fail(f"legacy fixture not found at {fixture}; set LEADHUB_SHARED_DIR to the shared/ folder")
    psql(url, "-v", f"n={n}", "-v", f"guide_backfill={int(guide_backfill)}", "-f", str(fixture))


def _columns(url: str, tables: list[str]) -> dict[str, list[str]]:
    with psycopg.connect(_libpq(url)) as conn:
        return {
            table: [
                r[0]
                for r in conn.execute(
                    "SELECT quote_ident(column_name) FROM information_schema.columns "
                    "WHERE table_name = %s ORDER BY ordinal_position",
                    (table,),
                )
            ]
            for table in tables
        }


def _snapshot(url: str, columns: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row, over the columns the tables had before the upgrade."""
    result = {}
    with psycopg.connect(_libpq(url)) as conn:
        for table, cols in columns.items():
            row = conn.execute(
                f"SELECT count(*), coalesce(md5(string_agg(({', '.join(cols)})::text, '|' ORDER BY {cols[0]})), '') "
                f"FROM {table}"
            ).fetchone()
            assert row is not None
            result[table] = (row[0], row[1])
    return result


def _assert_schema_matches_models(url: str) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        diffs = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata
        )
    engine.dispose()
    assert diffs == []


def _assert_link_is_ready(url: str) -> None:
    with psycopg.connect(_libpq(url)) as conn:
        fk = conn.execute(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'leads_master_customer_id_fkey'"
        ).fetchall()
        assert fk == [(True,)]
        index = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = 'idx_leads_master_customer_id'"
        ).fetchall()
        assert index == [(True,)]


def test_upgrade_creates_everything_on_an_empty_database_and_is_safe_twice(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        migrate.upgrade(url)
        migrate.upgrade(url)
        engine = make_engine(url)
        assert migrate.current_revision(engine) == migrate.head_revision()
        tables = set(inspect(engine).get_table_names())
        engine.dispose()
        assert {*LEGACY_TABLES, "customers", "intake_events", "source_channels"} <= tables
        _assert_schema_matches_models(url)


@requires_postgres
@pytest.mark.parametrize("guide_backfill", [False, True], ids=["legacy", "legacy+guide-customers"])
def test_upgrade_adopts_a_legacy_database_without_changing_a_row(
    tmp_path: Path, guide_backfill: bool
) -> None:
    with fresh_database(tmp_path) as url:
        _fixture(url, n=500, guide_backfill=guide_backfill)
        columns = _columns(url, LEGACY_TABLES + (["customers"] if guide_backfill else []))
        before = _snapshot(url, columns)
        migrate.upgrade(url)
        assert _snapshot(url, columns) == before
        migrate.upgrade(url)  # a second run changes nothing either
        assert _snapshot(url, columns) == before
        _assert_link_is_ready(url)
        _assert_schema_matches_models(url)
        with psycopg.connect(_libpq(url)) as conn:
            # the guide's customers table and link were adopted, not duplicated
            fks = conn.execute(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'leads_master'::regclass AND contype = 'f' "
                "AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = 'leads_master'::regclass "
                "AND attname = 'customer_id')]"
            ).fetchone()
            assert fks == (1,)


@requires_postgres
def test_printed_sql_adopts_a_legacy_database_when_run_with_psql(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        _fixture(url, n=200, guide_backfill=True)
        columns = _columns(url, [*LEGACY_TABLES, "customers"])
        before = _snapshot(url, columns)
        script = migrate.upgrade_sql(url)
        assert "NOT VALID" in script and "CREATE INDEX CONCURRENTLY" in script
        assert "lock_timeout" in script
        sql_file = tmp_path / "upgrade.sql"
        sql_file.write_text(script)
        psql(url, "-f", str(sql_file))
        assert _snapshot(url, columns) == before
        engine = make_engine(url)
        assert migrate.current_revision(engine) == migrate.head_revision()
        engine.dispose()
        _assert_link_is_ready(url)
        migrate.upgrade(url)  # the live upgrade finds nothing left to do


def test_cli_db_sql_prints_the_upgrade(tmp_path: Path) -> None:
    env_url = f"sqlite:///{tmp_path / 'x.db'}"
    out = subprocess.run(
        ["leadhub", "db", "sql"],
        env={"LEADHUB_DATABASE_URL": env_url, "PATH": _venv_path()},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "CREATE TABLE IF NOT EXISTS customers" in out
    # revision 0016's rebuild is in the script too (the sqlite3 shell runs it with foreign keys off)
    assert (
        "PRIMARY KEY AUTOINCREMENT" in out and "ALTER TABLE _alembic_tmp_customers RENAME TO customers" in out
    )


def _venv_path() -> str:
    import os
    import sys

    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _leads_master_indexes(url: str) -> list[tuple[str, str, bool]]:
    with psycopg.connect(_libpq(url)) as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'leads_master'::regclass ORDER BY 1"
            )
        ]


@requires_postgres
def test_with_a_big_backfill_to_come_the_staff_list_indexes_are_left_to_the_backfill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadhub.db import ddl
    from leadhub.errors import LeadhubError
    from leadhub.migration.backfill import run_backfill
    from leadhub.migration.emit_sql import emit_sql
    from leadhub.migration.verify import verify

    staff = ["ix_leads_master_assigned_to_id", "ix_leads_master_branch_id_id", "ix_leads_master_followup_set"]
    with fresh_database(tmp_path) as built, fresh_database(tmp_path) as left:
        for url in (built, left):
            _fixture(url, n=500, guide_backfill=False)
        migrate.upgrade(built)
        monkeypatch.setattr(ddl, "BACKFILL_PENDING_LEADS", 300)  # 500 leads to backfill count as many
        migrate.upgrade(left)
        monkeypatch.undo()
        expected = _leads_master_indexes(built)
        assert {name for name, _, _ in expected} >= set(staff)
        assert [name for name, _, _ in _leads_master_indexes(left)] == sorted(
            {name for name, _, _ in expected} - set(staff)
        )
        with psycopg.connect(_libpq(left)) as conn:
            # revision 0015 replaced the full follow-up index it would have built, so it is not waiting
            waiting = [r[0] for r in conn.execute("SELECT name FROM backfill_set_aside ORDER BY name")]
        assert waiting == staff
        engine = make_engine(left)
        assert not verify(engine).ok
        # the --emit-sql script does not build them: it refuses, and says how
        with pytest.raises(LeadhubError, match="db upgrade --build-all"):
            emit_sql(engine, tmp_path / "backfill.sql")
        report = run_backfill(engine)
        assert report.set_aside == [] and sorted(report.put_back) == staff
        assert verify(engine).ok
        engine.dispose()
        assert _leads_master_indexes(left) == expected
        _assert_schema_matches_models(left)


@requires_postgres
def test_upgrade_build_all_builds_what_the_upgrade_left_to_the_backfill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadhub.db import ddl

    with fresh_database(tmp_path) as built, fresh_database(tmp_path) as left:
        for url in (built, left):
            _fixture(url, n=500, guide_backfill=False)
        migrate.upgrade(built)
        monkeypatch.setattr(ddl, "BACKFILL_PENDING_LEADS", 300)
        migrate.upgrade(left)
        monkeypatch.undo()
        assert _leads_master_indexes(left) != _leads_master_indexes(built)
        done = subprocess.run(
            [str(Path(sys.executable).parent / "leadhub"), "db", "upgrade", "--build-all"],
            env={**os.environ, "LEADHUB_DATABASE_URL": left}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert "built ix_leads_master_assigned_to_id" in done.stdout
        assert _leads_master_indexes(left) == _leads_master_indexes(built)
        with psycopg.connect(_libpq(left)) as conn:
            assert conn.execute("SELECT count(*) FROM backfill_set_aside").fetchone() == (0,)
