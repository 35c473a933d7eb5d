"""Set-based writes for one backfill batch.

PostgreSQL gets one statement per kind of write, its rows passed as arrays and expanded with
unnest(): a few small statements per batch instead of thousands of parameters to compile and parse.
SQLite (small sites) gets executemany of the same statements through SQLAlchemy.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, or_, text, update
from sqlalchemy.orm import Session

from leadhub.db.dialect import dialect_name, upsert
from leadhub.db.models import BackfillCustomerAttrs, BackfillCustomerKey, BackfillLeadLog, IntakeEvent
from leadhub.migration.common import CUSTOMERS, LEADS

# PostgreSQL statement texts, shared with the `--emit-sql` script (leadhub.migration.emit_sql), which
# runs them with the same parameters as arrays built in PL/pgSQL: one source of truth for the writes.
INSERT_CUSTOMERS = (
    "INSERT INTO customers (phone_number_normalized, origin, created_at, updated_at) "
    "SELECT p, 'backfill', :stamp, :stamp FROM unnest(CAST(:phones AS text[])) AS p "
    "ON CONFLICT (phone_number_normalized) DO NOTHING RETURNING id"
)
UPDATE_LEADS = (
    "UPDATE leads_master AS l SET phone_number_normalized = v.phone, phone_number_legacy = v.legacy, "
    "customer_id = v.cid, enquired_at = v.enq "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:old AS text[]), CAST(:phone AS text[]), CAST(:legacy AS text[]), "
    "CAST(:cid AS bigint[]), CAST(:enq AS timestamptz[])) AS v(id, old, phone, legacy, cid, enq) "
    "WHERE l.id = v.id AND l.phone_number_normalized IS NOT DISTINCT FROM v.old"
)
INSERT_LEAD_LOGS = (
    "INSERT INTO backfill_lead_log (lead_id, run_id, old_customer_id) "
    "SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:runs AS bigint[]), CAST(:old AS bigint[])) "
    "ON CONFLICT (lead_id) DO NOTHING"
)
INSERT_EVENTS = (
    "INSERT INTO intake_events (source, external_id, status, outcome, lead_id, customer_id, attempts, "
    "received_at, processed_at) "
    "SELECT s, e, 'processed', 'legacy', l, c, 0, r, :stamp FROM unnest(CAST(:s AS text[]), CAST(:e AS text[]), "
    "CAST(:l AS bigint[]), CAST(:c AS bigint[]), CAST(:r AS timestamptz[])) AS v(s, e, l, c, r) "
    "ON CONFLICT (source, external_id) DO NOTHING RETURNING id"
)
MERGE_LOG = (
    "INSERT INTO backfill_log (run_id, kind, table_name, row_id, before, restored) "
    "SELECT :run, CASE WHEN c.id = ANY(CAST(:old AS bigint[])) THEN 'customer_merged' ELSE 'customer_before' END, "
    "'customers', c.id, to_jsonb(c), false FROM customers c "
    "WHERE c.id = ANY(CAST(:logged AS bigint[]))"
)
DETACH_LOG = (
    "INSERT INTO backfill_log (run_id, kind, table_name, row_id, before, restored) "
    "SELECT :run, 'customer_detached', 'customers', c.id, to_jsonb(c), false FROM customers c "
    "WHERE c.id = ANY(CAST(:old AS bigint[]))"
)
DELETE_CUSTOMERS = "DELETE FROM customers WHERE id = ANY(CAST(:old AS bigint[]))"
REKEY_CUSTOMERS = (
    "UPDATE customers c SET phone_number_normalized = m.phone FROM unnest(CAST(:rk AS bigint[]), "
    "CAST(:ph AS text[])) AS m(id, phone) WHERE c.id = m.id"
)
INSERT_KEYS = (
    "INSERT INTO backfill_customer_keys (customer_id, e164, reason) SELECT * FROM unnest(CAST(:ids AS bigint[]), "
    "CAST(:keys AS text[]), CAST(:reasons AS text[])) ON CONFLICT (customer_id) DO NOTHING"
)
# The next keys to merge, in order after the last one handed out (the index on e164).
NEXT_KEYS = "SELECT DISTINCT e164 FROM backfill_customer_keys WHERE e164 > :last AND e164 <> '' ORDER BY e164 LIMIT :n"
DELETE_KEYS = "DELETE FROM backfill_customer_keys WHERE e164 = ANY(CAST(:keys AS text[]))"
DELETE_DETACHED_KEYS = "DELETE FROM backfill_customer_keys WHERE customer_id = ANY(CAST(:ids AS bigint[]))"
# Attributes: the before-image of customers the legacy guide made (origin NULL), once per customer, then
# the replay-equivalent values. The NOT EXISTS is one probe per customer of the partial index on
# before-images (revision 0013); without it the log was hashed whole in every batch.
ATTRIBUTES_LOG = (
    "INSERT INTO backfill_log (run_id, kind, table_name, row_id, before, restored) "
    "SELECT :run, 'customer_before', 'customers', c.id, to_jsonb(c), false FROM customers c "
    "WHERE c.id = ANY(CAST(:ids AS bigint[])) AND c.origin IS NULL AND NOT EXISTS (SELECT 1 FROM backfill_log g "
    "WHERE g.row_id = c.id AND g.kind = 'customer_before' AND g.table_name = 'customers')"
)
UPDATE_ATTRIBUTES = (
    "UPDATE customers c SET full_name = v.fn, city = v.ci, created_at = v.ca, updated_at = :stamp "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:fn AS text[]), CAST(:ci AS text[]), CAST(:ca AS timestamptz[])) "
    "AS v(id, fn, ci, ca) WHERE c.id = v.id"
)


def _t(model: Any) -> Table:
    return cast(Table, model.__table__)


def _pg(session: Session) -> bool:
    return dialect_name(session) == "postgresql"


def _column(rows: list[dict[str, Any]], key: str) -> list[Any]:
    return [row[key] for row in rows]


def insert_customers(session: Session, phones: list[str], stamp: datetime) -> int:
    """Create a customer for each phone that has none; return how many were created."""
    if not phones:
        return 0
    if _pg(session):
        return len(session.execute(text(INSERT_CUSTOMERS), {"phones": phones, "stamp": stamp}).all())
    return len(session.execute(
        upsert(session, CUSTOMERS).on_conflict_do_nothing(index_elements=["phone_number_normalized"])
        .returning(CUSTOMERS.c.id),
        [{"phone_number_normalized": p, "origin": "backfill", "created_at": stamp, "updated_at": stamp} for p in phones],
    ).all())  # fmt: skip


def insert_keys(session: Session, staged: list[dict[str, Any]]) -> None:
    """Stage the canonical key (or None and why) of customers whose stored phone is not canonical."""
    if not staged:
        return
    if _pg(session):  # one statement, not one per customer
        session.execute(text(INSERT_KEYS), {"ids": _column(staged, "customer_id"), "keys": _column(staged, "e164"),
                                            "reasons": _column(staged, "reason")})  # fmt: skip
        return
    session.execute(
        upsert(session, _t(BackfillCustomerKey)).on_conflict_do_nothing(index_elements=["customer_id"]),
        staged,
    )


def customer_ids(session: Session, phones: list[str]) -> dict[str, int]:
    if not phones:
        return {}
    if _pg(session):
        rows = session.execute(text(
            "SELECT phone_number_normalized, id FROM customers WHERE phone_number_normalized = ANY(CAST(:p AS text[]))"
        ), {"p": phones}).all()  # fmt: skip
        return dict(rows)
    found: dict[str, int] = {}
    for start in range(0, len(phones), 500):
        chunk = phones[start : start + 500]
        found.update(dict(session.execute(
            CUSTOMERS.select().with_only_columns(CUSTOMERS.c.phone_number_normalized, CUSTOMERS.c.id)
            .where(CUSTOMERS.c.phone_number_normalized.in_(chunk))).all()))  # fmt: skip
    return found


def update_leads(session: Session, changes: list[dict[str, Any]]) -> int:
    """Apply the batch's new phone, legacy string, link and enquiry time; skip rows a live writer
    changed since they were read (their phone is no longer the one we canonicalised). Returns rows updated."""
    if not changes:
        return 0
    if _pg(session):
        updated = session.execute(text(UPDATE_LEADS), {"ids": _column(changes, "b_id"), "old": _column(changes, "b_old"),
            "phone": _column(changes, "phone_number_normalized"), "legacy": _column(changes, "phone_number_legacy"),
            "cid": _column(changes, "customer_id"), "enq": _column(changes, "enquired_at")}).rowcount  # type: ignore[attr-defined]  # fmt: skip
        return int(updated)
    result = session.execute(
        update(LEADS)
        .where(LEADS.c.id == bindparam("b_id"), LEADS.c.phone_number_normalized.is_not_distinct_from(bindparam("b_old")))
        .values(phone_number_normalized=bindparam("phone_number_normalized"),
                phone_number_legacy=bindparam("phone_number_legacy"), customer_id=bindparam("customer_id"),
                enquired_at=bindparam("enquired_at")),
        changes,
        execution_options={"synchronize_session": False},
    )  # fmt: skip
    count = result.rowcount  # type: ignore[attr-defined]
    return int(count) if count is not None and count >= 0 else len(changes)


def insert_lead_logs(session: Session, logs: list[dict[str, Any]]) -> None:
    if not logs:
        return
    if _pg(session):
        session.execute(text(INSERT_LEAD_LOGS), {"ids": _column(logs, "lead_id"), "runs": _column(logs, "run_id"), "old": _column(logs, "old_customer_id")})  # fmt: skip
        return
    session.execute(
        upsert(session, _t(BackfillLeadLog)).on_conflict_do_nothing(index_elements=["lead_id"]), logs
    )


def insert_events(session: Session, events: list[dict[str, Any]]) -> int:
    """Register legacy external ids in the inbox (processed), so a later sync does not import them again."""
    if not events:
        return 0
    if _pg(session):
        return len(session.execute(text(INSERT_EVENTS), {"s": _column(events, "source"), "e": _column(events, "external_id"), "l": _column(events, "lead_id"),
            "c": _column(events, "customer_id"), "r": _column(events, "received_at"),
            "stamp": events[0]["processed_at"]}).all())  # fmt: skip
    return len(session.execute(
        upsert(session, _t(IntakeEvent)).on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(_t(IntakeEvent).c.id),
        events,
    ).all())  # fmt: skip


MERGE_ATTRIBUTES = """
INSERT INTO backfill_customer_attrs AS t (customer_id, first_key, first_at, full_name, name_key, city, city_key)
SELECT * FROM unnest(CAST(:cid AS bigint[]), CAST(:fk AS text[]), CAST(:fa AS timestamptz[]), CAST(:fn AS text[]),
                     CAST(:nk AS text[]), CAST(:ci AS text[]), CAST(:ck AS text[]))
ON CONFLICT (customer_id) DO UPDATE SET
  first_at = CASE WHEN EXCLUDED.first_key < t.first_key THEN EXCLUDED.first_at ELSE t.first_at END,
  first_key = LEAST(EXCLUDED.first_key, t.first_key),
  full_name = CASE WHEN EXCLUDED.name_key IS NOT NULL AND (t.name_key IS NULL OR EXCLUDED.name_key < t.name_key)
                   THEN EXCLUDED.full_name ELSE t.full_name END,
  name_key = CASE WHEN EXCLUDED.name_key IS NOT NULL AND (t.name_key IS NULL OR EXCLUDED.name_key < t.name_key)
                  THEN EXCLUDED.name_key ELSE t.name_key END,
  city = CASE WHEN EXCLUDED.city_key IS NOT NULL AND (t.city_key IS NULL OR EXCLUDED.city_key < t.city_key)
              THEN EXCLUDED.city ELSE t.city END,
  city_key = CASE WHEN EXCLUDED.city_key IS NOT NULL AND (t.city_key IS NULL OR EXCLUDED.city_key < t.city_key)
                  THEN EXCLUDED.city_key ELSE t.city_key END
"""


def merge_attributes(session: Session, attrs: list[dict[str, Any]]) -> None:
    """Merge this batch's earliest values into the staging table, keeping the earlier of the two."""
    if not attrs:
        return
    if _pg(session):
        session.execute(text(MERGE_ATTRIBUTES), {
            "cid": _column(attrs, "customer_id"), "fk": _column(attrs, "first_key"), "fa": _column(attrs, "first_at"),
            "fn": _column(attrs, "full_name"), "nk": _column(attrs, "name_key"), "ci": _column(attrs, "city"),
            "ck": _column(attrs, "city_key")})  # fmt: skip
        return
    t = _t(BackfillCustomerAttrs)
    stmt = upsert(session, t)
    new = stmt.excluded

    def earlier(key: str) -> Any:
        return and_(new[key].is_not(None), or_(t.c[key].is_(None), new[key] < t.c[key]))

    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={
                "first_at": case((new.first_key < t.c.first_key, new.first_at), else_=t.c.first_at),
                "first_key": case((new.first_key < t.c.first_key, new.first_key), else_=t.c.first_key),
                "full_name": case((earlier("name_key"), new.full_name), else_=t.c.full_name),
                "name_key": case((earlier("name_key"), new.name_key), else_=t.c.name_key),
                "city": case((earlier("city_key"), new.city), else_=t.c.city),
                "city_key": case((earlier("city_key"), new.city_key), else_=t.c.city_key),
            },
        ),
        attrs,
    )


def merge_groups_pg(session: Session, run_id: int, keys: list[str]) -> tuple[int, int, int]:
    """Merge the customers of several canonical phones at once (PostgreSQL).

    For each key: its staged customers plus any customer already holding the key; the oldest
    (created_at, then id) survives and takes the key. Everything replaced is logged for undo.
    Returns (staged rows handled, customers merged away, survivors re-keyed)."""
    # Two index-driven steps (keys, then the customers by id, locked in id order): one join here
    # let the planner hash all of `customers` on every batch.
    pairs = session.execute(text(
        "SELECT e164, customer_id FROM backfill_customer_keys WHERE e164 = ANY(CAST(:keys AS text[])) "
        "UNION SELECT phone_number_normalized, id FROM customers WHERE phone_number_normalized = ANY(CAST(:keys AS text[]))"
    ), {"keys": keys}).all()  # fmt: skip
    key_of = {customer_id: e164 for e164, customer_id in pairs}
    members = [
        SimpleNamespace(e164=key_of[r.id], id=r.id, created_at=r.created_at, holds=r.phone_number_normalized == key_of[r.id])
        for r in session.execute(text(
            "SELECT id, created_at, phone_number_normalized FROM customers WHERE id = ANY(CAST(:ids AS bigint[])) "
            "ORDER BY id FOR UPDATE"), {"ids": sorted(key_of)}).all()
    ]  # fmt: skip
    staged = session.execute(text(
        "SELECT count(*) FROM backfill_customer_keys WHERE e164 = ANY(CAST(:keys AS text[]))"), {"keys": keys}).scalar_one()  # fmt: skip
    groups: dict[str, list[Any]] = {}
    for row in members:
        groups.setdefault(row.e164, []).append(row)
    old_ids: list[int] = []
    new_ids: list[int] = []
    rekey_ids: list[int] = []
    rekey_phones: list[str] = []
    for e164, rows in groups.items():
        survivor = min(rows, key=lambda r: (r.created_at is None, r.created_at or datetime.min, r.id))
        for row in rows:
            if row.id != survivor.id:
                old_ids.append(row.id)
                new_ids.append(survivor.id)
        if not survivor.holds:
            rekey_ids.append(survivor.id)
            rekey_phones.append(e164)
    params = {
        "run": run_id,
        "old": old_ids,
        "new": new_ids,
        "rk": rekey_ids,
        "ph": rekey_phones,
        "keys": keys,
        "logged": old_ids + rekey_ids,
    }
    for statement in merge_statements():
        session.execute(text(statement), params)
    return int(staged), len(old_ids), len(rekey_ids)


def detach_pg(session: Session, run_id: int, customer_ids: list[int]) -> int:
    """Detach customers whose phone is not a valid number: leads unlinked, rows logged then removed."""
    live = [r[0] for r in session.execute(text(
        "SELECT id FROM customers WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR UPDATE"), {"ids": customer_ids})]  # fmt: skip
    params = {"run": run_id, "old": live, "new": [None] * len(live), "ids": customer_ids}
    for statement in detach_statements():
        session.execute(text(statement), params)
    return len(live)


def move_statements() -> list[str]:
    """Point leads and every other reference from :old[i] to :new[i] (NULL: detach), logging them."""
    from leadhub.migration.common import customer_references

    statements = [
        "INSERT INTO backfill_lead_log (lead_id, run_id, old_customer_id) "
        "SELECT id, :run, CASE WHEN phone_number_legacy IS NULL THEN customer_id END "  # common.undo_link
        "FROM leads_master WHERE customer_id = ANY(CAST(:old AS bigint[])) ON CONFLICT (lead_id) DO NOTHING",
        "UPDATE leads_master l SET customer_id = m.new FROM unnest(CAST(:old AS bigint[]), CAST(:new AS bigint[])) "
        "AS m(old, new) WHERE l.customer_id = m.old",
    ]
    for tbl, column in customer_references():
        pk = next(iter(tbl.primary_key.columns)).name
        statements += [
            f"INSERT INTO backfill_log (run_id, kind, table_name, row_id, before, restored) "
            f"SELECT :run, 'reference', '{tbl.name}', t.\"{pk}\", jsonb_build_object('column', '{column}', 'value', t.\"{column}\"), "
            f'false FROM "{tbl.name}" t WHERE t."{column}" = ANY(CAST(:old AS bigint[]))',
            f'UPDATE "{tbl.name}" t SET "{column}" = m.new FROM unnest(CAST(:old AS bigint[]), CAST(:new AS bigint[])) '
            f'AS m(old, new) WHERE t."{column}" = m.old',
        ]  # fmt: skip
    return statements


def merge_statements() -> list[str]:
    """Log, move, delete and re-key one set of groups; parameters run, old, new, rk, ph, keys, logged."""
    return [MERGE_LOG, *move_statements(), DELETE_CUSTOMERS, REKEY_CUSTOMERS, DELETE_KEYS]


def detach_statements() -> list[str]:
    """Log, unlink and delete detached customers; parameters run, old, new (NULLs), ids."""
    return [DETACH_LOG, *move_statements(), DELETE_CUSTOMERS, DELETE_DETACHED_KEYS]
