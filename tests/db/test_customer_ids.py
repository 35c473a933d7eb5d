"""Revision 0016: a customer id is never given out twice, so undo can put a merged customer back."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from leadhub.db import migrate
from leadhub.db.session import make_engine
from tests.conftest import ON_POSTGRES, fresh_database


def _new_customer(engine: Engine, phone: str) -> int:
    with engine.begin() as conn:
        return int(conn.execute(
            text("INSERT INTO customers (phone_number_normalized) VALUES (:p) RETURNING id"), {"p": phone}
        ).scalar_one())  # fmt: skip


def test_the_id_of_a_deleted_customer_is_not_given_to_the_next_one(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        try:
            _new_customer(engine, "+919876543210")
            last = _new_customer(engine, "+919876543211")
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM customers WHERE id = :id"), {"id": last})
            assert _new_customer(engine, "+919876543212") > last
        finally:
            engine.dispose()


def test_the_revision_keeps_every_customer_and_link_and_starts_above_ids_the_backfill_log_holds(
    tmp_path: Path,
) -> None:
    # A site upgraded after a backfill: customer 5 was merged away (kept in the log), customer 3 holds
    # the largest id left. The next customer must not take 4 or 5.
    with fresh_database(tmp_path) as url:
        migrate.upgrade(url, "0015")
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                for cid in (1, 2, 3):
                    conn.execute(text("INSERT INTO customers (id, phone_number_normalized, full_name) "
                                      "VALUES (:id, :p, 'Asha')"), {"id": cid, "p": f"+91987654321{cid}"})  # fmt: skip
                conn.execute(text("INSERT INTO leads_master (full_name, customer_id) VALUES ('Asha', 3)"))
                if ON_POSTGRES:  # the identity gave out 4 and 5 too, to the customers since merged away
                    conn.execute(text("SELECT setval(pg_get_serial_sequence('customers', 'id'), 5)"))
                conn.execute(text(
                    "INSERT INTO backfill_runs (status, phase, started_at) VALUES ('finished', 'done', CURRENT_TIMESTAMP)"))  # fmt: skip
                conn.execute(text(
                    "INSERT INTO backfill_log (run_id, kind, table_name, row_id, before, restored) "
                    "SELECT id, 'customer_merged', 'customers', 5, '{}', false FROM backfill_runs"))  # fmt: skip
            migrate.upgrade(url)
            with engine.connect() as conn:
                customers = conn.execute(text("SELECT id, full_name FROM customers ORDER BY id")).all()
                link = conn.execute(text("SELECT customer_id FROM leads_master")).scalar_one()
                if not ON_POSTGRES:
                    assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            assert [tuple(c) for c in customers] == [(1, "Asha"), (2, "Asha"), (3, "Asha")] and link == 3
            assert _new_customer(engine, "+919000000001") > 5
            with pytest.raises(IntegrityError):  # one customer per phone still holds after the rebuild
                _new_customer(engine, "+919000000001")
            command.downgrade(migrate._config(url), "0015")
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM customers")).scalar_one() == 4
                assert conn.execute(text("SELECT customer_id FROM leads_master")).scalar_one() == 3
        finally:
            engine.dispose()


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's foreign-key pragma")
def test_foreign_keys_are_enforced_after_an_upgrade_whether_or_not_it_had_work_to_do(tmp_path: Path) -> None:
    # The migration environment turns them off for a table rebuild; the pooled connection it used must
    # enforce them again, also when the database was already at head.
    with fresh_database(tmp_path) as url:
        engine = make_engine(url, pool_size=1, max_overflow=0)
        try:
            for _ in range(2):
                migrate.upgrade_engine(engine)
                with engine.connect() as conn:
                    assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                    with pytest.raises(IntegrityError):
                        conn.execute(
                            text("INSERT INTO leads_master (full_name, customer_id) VALUES ('x', 999)")
                        )
        finally:
            engine.dispose()
