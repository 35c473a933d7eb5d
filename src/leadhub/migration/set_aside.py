"""Indexes and foreign keys the PostgreSQL leads phase sets aside while it writes every lead.

Each lead the backfill writes gets a new row version, with an entry in every index on `leads_master`
and a check of its customer; each legacy id it registers checks its lead and its customer. At 200,000
leads on the 2-core machine the lead write took 12.5-13.0 s of server time with leadhub's three
staff-list indexes and the customer foreign key in place, 5.3 s without (docs/benchmarks.md).

Three of those indexes serve leadhub's staff lists, which are not in use before the switch
(docs/migration.md); the fourth, on `intake_events.customer_id`, serves the foreign-key check of a
customer's delete (each legacy id registered wrote an entry to it: about 2 s of a 33 s run at
1,000,000 leads). Nothing deletes a customer or a lead while the leads phase runs (the repair's merge
comes before it, `--undo` puts everything back first). So a big leads phase drops them and builds them
again when it ends:

- each index with DROP INDEX CONCURRENTLY, and back with CREATE INDEX CONCURRENTLY (no writer waits);
- each foreign key with ALTER TABLE ... DROP CONSTRAINT under `lock_timeout` (a moment's exclusive
  lock; a table a long transaction holds is left as it is), and back NOT VALID, then validated, which
  blocks no writer and fails, naming the key, if a row broke it meanwhile.

The indexes on `leads_master.customer_id` and on its phone stay: the backfill and the old app read them.

Every definition is written to `backfill_set_aside`, and committed, before its object is dropped; the
row goes only once the object is back. `put_back` runs at the end of every backfill run and at the
start of `--undo`, so a killed run leaves nothing missing past its next run, and `leadhub verify` fails
while anything is set aside.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from leadhub.db.set_aside_table import BACKFILL_PENDING_LEADS, INDEX_VALID, KEEP, PENDING_LEADS
from leadhub.errors import LeadhubError
from leadhub.migration.common import now

log = logging.getLogger("leadhub.backfill")

INDEXES = (
    ("leads_master", "ix_leads_master_assigned_to_id"),
    ("leads_master", "ix_leads_master_branch_id_id"),
    ("leads_master", "ix_leads_master_followup_set"),
    ("intake_events", "ix_intake_events_customer_id"),
)
FOREIGN_KEYS = (
    ("leads_master", "leads_master_customer_id_fkey"),
    ("intake_events", "intake_events_lead_id_fkey"),
    ("intake_events", "intake_events_customer_id_fkey"),
)
# Leads still to backfill before `auto` sets anything aside: below this, building the indexes again
# costs more than their entries would. The upgrade leaves the indexes to the backfill from the same count.
MIN_LEADS = BACKFILL_PENDING_LEADS
LOCK_TIMEOUT = "5s"  # index builds and drops, validation: they wait for transactions, blocking no writer
DDL_LOCK_TIMEOUT, DDL_ATTEMPTS = "100ms", 40


class Mode(StrEnum):
    AUTO = "auto"  # when at least MIN_LEADS leads are still to be backfilled
    ALWAYS = "always"
    NEVER = "never"


def wanted(engine: Engine, mode: Mode, after: int) -> bool:
    """Whether this leads phase should set the indexes and keys aside (PostgreSQL only)."""
    if engine.dialect.name != "postgresql" or mode is Mode.NEVER:
        return False
    if mode is Mode.ALWAYS:
        return True
    with engine.connect() as conn:
        left = conn.execute(text(PENDING_LEADS), {"after": after, "n": MIN_LEADS}).scalar_one()
    return int(left) >= MIN_LEADS


@contextmanager
def _autocommit(engine: Engine) -> Iterator[Connection]:
    """A connection outside any transaction (the CONCURRENTLY statements need one), its lock_timeout
    reset before it goes back to the pool."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
        try:
            yield conn
        finally:
            conn.execute(text("RESET lock_timeout"))


def _lock_error(error: OperationalError) -> bool:
    return getattr(error.orig, "sqlstate", None) in ("55P03", "40P01")  # lock timeout, deadlock


def _retrying(conn: Connection, sql: str, what: str) -> bool:
    """ALTER TABLE on a foreign key: exclusive locks on the table and on the one it references. Each try
    waits at most DDL_LOCK_TIMEOUT, well under PostgreSQL's deadlock_timeout (1 s): live intake locks
    the same tables in another order, and a writer that waits on this statement must never be the one
    the deadlock check cancels. False if no try got the locks."""
    for _ in range(DDL_ATTEMPTS):
        conn.execute(text(f"SET lock_timeout = '{DDL_LOCK_TIMEOUT}'"))
        try:
            conn.execute(text(sql))
            return True
        except OperationalError as error:
            if not _lock_error(error):
                raise
            time.sleep(random.uniform(0.05, 0.25))
        finally:
            conn.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
    log.warning("%s: no lock after %d tries of %s", what, DDL_ATTEMPTS, DDL_LOCK_TIMEOUT)
    return False


def set_aside(engine: Engine, run_id: int) -> list[str]:
    """Drop the indexes and foreign keys (each definition kept first); returns the names dropped. One that
    cannot be dropped now (a long transaction holds its table) stays, and the run goes on with it."""
    dropped: list[str] = []
    with _autocommit(engine) as conn:
        for table, name in INDEXES:
            if _kept(conn, "index", table, name, run_id):
                try:
                    conn.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))
                    dropped.append(name)
                except OperationalError as error:  # kept, so put_back builds it again if it went invalid
                    if not _lock_error(error):
                        raise
                    log.warning(
                        "%s: left in place (a transaction older than %s holds %s)", name, LOCK_TIMEOUT, table
                    )
        for table, name in FOREIGN_KEYS:
            if _kept(conn, "foreign_key", table, name, run_id):
                if _retrying(
                    conn, f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{name}"', f"setting aside {name}"
                ):
                    dropped.append(name)
                else:
                    log.warning("%s: left in place (a long transaction holds %s)", name, table)
    if dropped:
        log.info("set aside while the leads are written: %s", ", ".join(dropped))
    return dropped


_DEFINITION = {
    "index": "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = :name AND i.indrelid = CAST(:table AS regclass) AND i.indisvalid",
    "foreign_key": "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conname = :name AND conrelid = CAST(:table AS regclass) AND contype = 'f'",
}


def _kept(conn: Connection, kind: str, table: str, name: str, run_id: int) -> bool:
    """Commit the object's definition to backfill_set_aside before it is dropped; False if it is not there
    (or, for an index, not valid) to be dropped."""
    definition = conn.execute(text(_DEFINITION[kind]), {"name": name, "table": table}).scalar_one_or_none()
    if definition is None:
        return False
    conn.execute(text(KEEP), {"name": name, "kind": kind, "table": table, "definition": definition, "run": run_id,
                              "at": now()})  # fmt: skip
    return True


def put_back(engine: Engine, *, validate: bool = True) -> tuple[list[str], float]:
    """Re-add every set-aside key (NOT VALID, then validated) and build every set-aside index again;
    returns the names back and the seconds it took. Idempotent: an object already back only loses its row.

    Keys first: they guard live writes, the indexes only speed up the staff lists. Every key is tried
    before any error is raised; a key that cannot be validated stays NOT VALID with its row kept.
    `validate=False` (undo, before it restores the rows that may break a key): keys come back NOT VALID
    and keep their rows; undo calls again with validation at its end."""
    if engine.dialect.name != "postgresql":
        return [], 0.0
    started = time.perf_counter()
    back: list[str] = []
    broken: list[str] = []
    with _autocommit(engine) as conn:
        # 'foreign_key' sorts before 'index'
        rows = conn.execute(text(
            "SELECT name, kind, table_name, definition FROM backfill_set_aside ORDER BY kind, name"
        )).all()  # fmt: skip
        for name, kind, table, definition in rows:
            log.info("putting back %s", name)
            if kind == "index":
                _put_back_index(conn, name, definition)
            elif not _put_back_key(conn, name, table, definition, validate=validate):
                if validate:
                    broken.append(f"{name} (on {table})")
                continue
            conn.execute(text("DELETE FROM backfill_set_aside WHERE name = :name"), {"name": name})
            back.append(name)
    seconds = time.perf_counter() - started
    if back:
        log.info("put back in %.1f s: %s", seconds, ", ".join(back))
    if broken:
        raise LeadhubError(
            f"foreign keys back but not valid: {', '.join(broken)}: rows written while they were set aside point "
            "at rows that no longer exist (for leads_master, `leadhub verify` lists them); fix those rows, "
            "then run `leadhub backfill-customers` again, or undo with `leadhub backfill-customers --undo`"
        )
    return back, seconds


def _put_back_index(conn: Connection, name: str, definition: str) -> None:
    concurrent, found = re.subn(
        r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX CONCURRENTLY IF NOT EXISTS ", definition
    )
    if found != 1:
        raise LeadhubError(f"cannot rebuild index {name} from its kept definition: {definition!r}")
    try:
        if conn.execute(text(INDEX_VALID), {"name": name}).scalar_one_or_none() is False:  # stopped half-way
            conn.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))
        conn.execute(text(concurrent))
    except OperationalError as error:
        if not _lock_error(error):
            raise
        raise LeadhubError(
            f"building the index {name} again waited more than {LOCK_TIMEOUT} for older transactions (a long "
            "report or dump?); run `leadhub backfill-customers` again when they have ended (the staff lists "
            "are slow without it)"
        ) from error


def _put_back_key(conn: Connection, name: str, table: str, definition: str, *, validate: bool) -> bool:
    """The key on its table again; True when it is also validated (or `validate` is off: False then)."""
    present = conn.execute(text(
        "SELECT convalidated FROM pg_constraint WHERE conname = :name AND conrelid = CAST(:table AS regclass)"
    ), {"name": name, "table": table}).first()  # fmt: skip
    if present is None:
        body = definition.removesuffix(" NOT VALID")
        if not _retrying(
            conn, f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {body} NOT VALID', f"putting back {name}"
        ):
            raise LeadhubError(
                f"could not put back the foreign key {name}: a long transaction holds {table}; "
                "run `leadhub backfill-customers` again when it has ended"
            )
    elif present[0]:
        return True
    if not validate:
        return False
    try:
        conn.execute(text(f'ALTER TABLE "{table}" VALIDATE CONSTRAINT "{name}"'))
    except IntegrityError:  # a row broke the key while it was set aside
        return False
    return True
