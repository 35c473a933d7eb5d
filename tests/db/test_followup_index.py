"""Revision 0015: the follow-up queues read a partial index that holds only leads with a follow-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Engine, Select, inspect, text

from leadhub.db import migrate
from leadhub.db.session import make_engine
from leadhub.leads.followups import overdue_followups, today_followups
from tests.conftest import ON_POSTGRES, fresh_database

PARTIAL, FULL = "ix_leads_master_followup_set", "ix_leads_master_next_followup_at"


def _indexes(engine: Engine) -> set[str]:
    return {ix["name"] for ix in inspect(engine).get_indexes("leads_master") if ix["name"]}


def _plan(engine: Engine, query: Select) -> str:  # type: ignore[type-arg]
    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        if ON_POSTGRES:
            conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table: ask whether the index is usable
            rows = conn.exec_driver_sql("EXPLAIN " + sql).all()
        else:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_follow_up_queues_use_the_partial_index_and_the_revision_goes_back_and_forth(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO leads_master (full_name, phone_number_normalized, next_followup_at) VALUES "
                    "('A', '+919876543210', '2026-11-29 06:00:00+00:00'), ('B', '+919876543211', NULL)"
                ))  # fmt: skip
            indexes = _indexes(engine)
            assert PARTIAL in indexes and FULL not in indexes
            for query in (today_followups(), overdue_followups()):
                assert PARTIAL in _plan(engine, query)
            if ON_POSTGRES:
                with engine.connect() as conn:
                    definition = conn.execute(
                        text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": PARTIAL}
                    ).scalar_one()
                assert definition.endswith("WHERE (next_followup_at IS NOT NULL)")

            command.downgrade(migrate._config(url), "0014")
            indexes = _indexes(engine)
            assert FULL in indexes and PARTIAL not in indexes
            migrate.upgrade(url)
            indexes = _indexes(engine)
            assert PARTIAL in indexes and FULL not in indexes
            assert migrate.current_revision(engine) == migrate.head_revision()
        finally:
            engine.dispose()
