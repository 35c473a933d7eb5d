"""`leadhub backfill-customers --undo`: put the database back as it was before the backfill.

Restores, from the logs the backfill kept: merged and detached customers (with their ids), the
before-image of every customer it re-keyed or re-attributed, each lead's legacy phone string, link
and enquiry time, and every other reference it moved. Customers the backfill created are removed
unless live intake has linked a lead to them since; rows written by live intake since the switch
are left alone and reported. Batched like the backfill, and safe to run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, Table, bindparam, delete, exists, or_, select, text, update
from sqlalchemy.orm import Session

from leadhub.db.dialect import dialect_name, upsert
from leadhub.db.models import BackfillLeadLog, BackfillLog, BackfillRun, IntakeEvent, Lead
from leadhub.errors import LeadhubError
from leadhub.migration import set_aside
from leadhub.migration.common import CUSTOMERS, LEADS, Progress, customer_references, now, table, with_retries

T = TypeVar("T")


@dataclass
class UndoReport:
    customers_restored: int = 0
    leads_restored: int = 0
    references_restored: int = 0
    customers_removed: int = 0
    external_ids_removed: int = 0
    kept_for_live_intake: list[int] = field(default_factory=list)  # backfill-made customers now in use
    longest_transaction_s: float = 0.0
    put_back: list[str] = field(default_factory=list)  # indexes and keys a killed run had set aside

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


RESTORE_LEADS = """
UPDATE leads_master l SET phone_number_normalized = v.phone, phone_number_legacy = NULL, customer_id = v.cid,
                          enquired_at = v.enq
FROM unnest(CAST(:ids AS bigint[]), CAST(:phones AS text[]), CAST(:cids AS bigint[]),
            CAST(:enqs AS timestamptz[])) AS v(id, phone, cid, enq)
WHERE l.id = v.id
"""


def _restore_row(before: dict[str, Any]) -> dict[str, Any]:
    row = dict(before)
    for key in ("created_at", "updated_at"):
        if isinstance(row.get(key), str):
            row[key] = datetime.fromisoformat(row[key])
    return row


def undo_backfill(engine: Engine, *, batch_size: int = 5000, progress: Progress | None = None) -> UndoReport:
    report = UndoReport()

    def run(work: Callable[[Session], T]) -> T:
        """One transaction (retried on a deadlock or serialization failure), its time noted."""
        result, seconds = with_retries(engine, work)
        report.longest_transaction_s = max(report.longest_transaction_s, seconds)
        return result

    # 0. The runs are undoing: no backfill starts or resumes until this undo has finished (an
    #    interrupted one is finished by running it again).
    #    First, before anything changes: a merged or detached customer not put back yet whose id
    #    another customer holds now cannot come back (SQLite before revision 0016 gave out ids again).
    def begin(session: Session) -> None:
        taken = list(session.execute(
            select(BackfillLog.row_id).join(CUSTOMERS, CUSTOMERS.c.id == BackfillLog.row_id)
            .where(BackfillLog.table_name == "customers", BackfillLog.restored.is_(False),
                   BackfillLog.kind.in_(["customer_merged", "customer_detached"]))
            .order_by(BackfillLog.row_id).limit(10)
        ).scalars())  # fmt: skip
        if taken:
            raise LeadhubError(
                f"undo cannot put back customers {taken} that the backfill merged or detached: other "
                "customers hold their ids now; nothing was changed (restore the backup instead)"
            )
        session.execute(update(BackfillRun).where(BackfillRun.status != "undone").values(status="undoing"))

    # Before anything: what a killed run set aside (leadhub.migration.set_aside) comes back, so undo's
    #    deletes are checked and the staff lists have their indexes; keys NOT VALID for now (a row that
    #    broke one meanwhile may be what undo restores), validated once undo has finished.
    report.put_back = set_aside.put_back(engine, validate=False)[0]
    run(begin)

    # 1. Customers the repair merged or detached come back first (leads will point at them again),
    #    and re-keyed / re-attributed ones get their old values. A batch's rows go in a few statements,
    #    not one per row; entries for a row seen earlier in the batch start a new group, so each row's
    #    entries apply in log order. In a group the old values go back before the merged and detached
    #    customers return: a survivor gives back the canonical phone it took from a customer merged
    #    into it before that customer is inserted with it again.
    def customers(session: Session) -> int:
        logs = session.execute(
            select(BackfillLog.id, BackfillLog.kind, BackfillLog.row_id, BackfillLog.before)
            .where(BackfillLog.table_name == "customers", BackfillLog.restored.is_(False))
            .order_by(BackfillLog.id).limit(batch_size)
        ).all()  # fmt: skip
        inserts: list[dict[str, Any]] = []
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        grouped: set[int] = set()

        def flush() -> None:
            for columns, rows in updates.items():
                session.execute(
                    update(CUSTOMERS).where(CUSTOMERS.c.id == _b("b_id")).values({c: _b(c) for c in columns}),
                    rows, execution_options={"synchronize_session": False},
                )  # fmt: skip
            if inserts:
                session.execute(
                    upsert(session, CUSTOMERS).on_conflict_do_nothing(index_elements=["id"]), inserts
                )
            inserts.clear()
            updates.clear()
            grouped.clear()

        for log in logs:
            if log.row_id in grouped:
                flush()
            grouped.add(log.row_id)
            row = _restore_row(log.before)
            if log.kind in ("customer_merged", "customer_detached"):
                inserts.append(row)
            else:  # customer_before
                values = {k: v for k, v in row.items() if k != "id"}
                updates.setdefault(tuple(sorted(values)), []).append({"b_id": log.row_id, **values})
        flush()
        if logs:
            session.execute(
                update(BackfillLog).where(BackfillLog.id.in_([log.id for log in logs])).values(restored=True)
            )
        return len(logs)

    report.customers_restored += _drain(run, customers, "customers", progress)

    # 2. Other references the repair moved.
    def references(session: Session) -> int:
        logs = session.execute(
            select(BackfillLog).where(BackfillLog.kind == "reference", BackfillLog.restored.is_(False))
            .order_by(BackfillLog.id).limit(batch_size)
        ).scalars().all()  # fmt: skip
        for log in logs:
            tbl = table(log.table_name)
            pk = next(iter(tbl.primary_key.columns))
            session.execute(
                update(tbl).where(pk == log.row_id).values({log.before["column"]: log.before["value"]})
            )
            log.restored = True
        return len(logs)

    report.references_restored += _drain(run, references, "references", progress)

    # 3. Leads: the legacy phone string, the old link (logged, or none), no enquiry time. A lead the
    #    leads phase never wrote (no legacy string, a phone: live intake's, that only a merge moved)
    #    gets only its link back; its phone and enquiry time are live intake's. Keyset batches in id
    #    order (a restored lead no longer matches, so each batch starts where the last ended).
    def leads(session: Session, after: int) -> list[int]:
        rows = session.execute(
            select(Lead.id, Lead.phone_number_legacy, BackfillLeadLog.old_customer_id, Lead.phone_number_normalized,
                   Lead.enquired_at)
            .outerjoin(BackfillLeadLog, BackfillLeadLog.lead_id == Lead.id)
            .where(Lead.id > after, or_(Lead.phone_number_legacy.is_not(None), BackfillLeadLog.lead_id.is_not(None)))
            .order_by(Lead.id).limit(batch_size)
        ).all()  # fmt: skip
        if not rows:
            return []
        restored = [
            {"b_id": r.id, "phone": r.phone_number_normalized, "cid": r.old_customer_id, "enq": r.enquired_at}
            if r.phone_number_legacy is None and r.phone_number_normalized is not None
            else {"b_id": r.id, "phone": r.phone_number_legacy, "cid": r.old_customer_id, "enq": None}
            for r in rows
        ]
        ids = [r["b_id"] for r in restored]
        if dialect_name(session) == "postgresql":  # one statement a batch
            session.execute(text(RESTORE_LEADS), {"ids": ids, "phones": [r["phone"] for r in restored],
                "cids": [r["cid"] for r in restored], "enqs": [r["enq"] for r in restored]})  # fmt: skip
        else:
            session.execute(
                update(LEADS).where(LEADS.c.id == _b("b_id")).values(
                    phone_number_normalized=_b("phone"), phone_number_legacy=None, customer_id=_b("cid"),
                    enquired_at=_b("enq")),
                restored,
                execution_options={"synchronize_session": False},
            )  # fmt: skip
        session.execute(delete(BackfillLeadLog).where(BackfillLeadLog.lead_id.in_(ids)))
        return ids

    report.leads_restored += _drain_keyset(run, leads, "leads", progress)

    # 4. Legacy external ids the backfill registered, a batch a transaction.
    events = cast(Table, IntakeEvent.__table__)

    def external_ids(session: Session, after: int) -> list[int]:
        ids = list(session.execute(
            select(events.c.id).where(events.c.outcome == "legacy", events.c.id > after)
            .order_by(events.c.id).limit(batch_size)
        ).scalars())  # fmt: skip
        if ids:
            session.execute(delete(events).where(events.c.id.in_(ids)))
        return ids

    report.external_ids_removed += _drain_keyset(run, external_ids, "external ids", progress)

    # 5. Customers it created that nothing uses, a batch a transaction in id order. Kept: those live
    #    intake has used since (a lead or an inbox event): the ones left afterwards, reported. Every
    #    reference to customers is indexed (revision 0017), so each delete's foreign-key checks are
    #    index probes.
    refs = [(LEADS, "customer_id"), *customer_references()]
    used = or_(*(exists().where(tbl.c[col] == CUSTOMERS.c.id) for tbl, col in refs))
    made_by_backfill = select(CUSTOMERS.c.id).where(CUSTOMERS.c.origin == "backfill").order_by(CUSTOMERS.c.id)

    def made(session: Session, after: int) -> list[int]:
        ids = list(session.execute(
            made_by_backfill.where(CUSTOMERS.c.id > after).limit(batch_size).with_for_update()
        ).scalars())  # fmt: skip
        if not ids:
            return []
        in_use = session.execute(select(CUSTOMERS.c.id).where(CUSTOMERS.c.id.in_(ids), used)).scalars()
        session.execute(delete(CUSTOMERS).where(CUSTOMERS.c.id.in_(sorted(set(ids) - set(in_use)))))
        return ids

    handled = _drain_keyset(run, made, "customers made", progress)
    report.kept_for_live_intake = run(lambda session: list(session.execute(made_by_backfill).scalars()))
    report.customers_removed += handled - len(report.kept_for_live_intake)

    # 6. The logs, every row restored by now, a batch a transaction; then the runs are marked undone.
    for model in (BackfillLog, BackfillLeadLog):
        log = cast(Table, model.__table__)
        key = next(iter(log.primary_key.columns))

        def clear(session: Session, after: int, log: Table = log, key: Any = key) -> list[int]:
            ids = list(
                session.execute(select(key).where(key > after).order_by(key).limit(batch_size)).scalars()
            )
            if ids:
                session.execute(delete(log).where(key.in_(ids)))
            return ids

        _drain_keyset(run, clear, log.name, progress)

    def finish(session: Session) -> None:
        session.execute(
            update(BackfillRun)
            .where(BackfillRun.status != "undone")
            .values(status="undone", finished_at=now())
        )

    run(finish)
    # 7. The keys brought back NOT VALID in step 0, validated (a row still breaking one is named).
    report.put_back += set_aside.put_back(engine)[0]
    return report


def _b(name: str) -> Any:
    return bindparam(name)


def _drain_keyset(
    run: Callable[[Any], Any],
    step: Callable[[Session, int], list[int]],
    phase: str,
    progress: Progress | None,
) -> int:
    """Run `step(session, after)` (one transaction each, handling the ids after `after` and returning
    them) until it handles nothing; returns how many it handled."""
    done, after = 0, 0
    while True:
        ids = run(lambda session, after=after: step(session, after))
        if not ids:
            return done
        done, after = done + len(ids), ids[-1]
        if progress:
            progress(f"undo {phase}", done, None)


def _drain(run: Callable[[Any], Any], step: Any, phase: str, progress: Progress | None) -> int:
    """Run `step` (one transaction each) until it handles nothing; returns how many it handled."""
    done = 0
    while True:
        n = run(step)
        if not n:
            return done
        done += n
        if progress:
            progress(f"undo {phase}", done, None)
