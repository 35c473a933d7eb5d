"""`leadhub backfill-customers --undo`: put the database back as it was before the backfill.

Restores, from the logs the backfill kept: merged and detached customers (with their ids), the
before-image of every customer it re-keyed or re-attributed, each lead's legacy phone string, link
and enquiry time, and every other reference it moved. Customers the backfill created are removed
unless live intake has linked a lead to them since; rows written by live intake since the switch
are left alone and reported. Batched like the backfill, and safe to run again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from leadhub.db.dialect import upsert
from leadhub.db.models import BackfillLeadLog, BackfillLog, BackfillRun, IntakeEvent, Lead
from leadhub.migration.common import CUSTOMERS, LEADS, Progress, customer_references, now, table, with_retries


@dataclass
class UndoReport:
    customers_restored: int = 0
    leads_restored: int = 0
    references_restored: int = 0
    customers_removed: int = 0
    external_ids_removed: int = 0
    kept_for_live_intake: list[int] = field(default_factory=list)  # backfill-made customers now in use

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _restore_row(before: dict[str, Any]) -> dict[str, Any]:
    row = dict(before)
    for key in ("created_at", "updated_at"):
        if isinstance(row.get(key), str):
            row[key] = datetime.fromisoformat(row[key])
    return row


def undo_backfill(engine: Engine, *, batch_size: int = 5000, progress: Progress | None = None) -> UndoReport:
    report = UndoReport()

    # 1. Customers the repair merged or detached come back first (leads will point at them again),
    #    and re-keyed / re-attributed ones get their old values. Oldest log entry wins per row.
    def customers(session: Session) -> int:
        logs = session.execute(
            select(BackfillLog).where(BackfillLog.table_name == "customers", BackfillLog.restored.is_(False))
            .order_by(BackfillLog.id).limit(batch_size)
        ).scalars().all()  # fmt: skip
        for log in logs:
            row = _restore_row(log.before)
            if log.kind in ("customer_merged", "customer_detached"):
                session.execute(
                    upsert(session, CUSTOMERS).on_conflict_do_nothing(index_elements=["id"]), [row]
                )
            else:  # customer_before
                session.execute(update(CUSTOMERS).where(CUSTOMERS.c.id == log.row_id).values(
                    {k: v for k, v in row.items() if k != "id"}))  # fmt: skip
            log.restored = True
        report.customers_restored += len(logs)
        return len(logs)

    _drain(engine, customers, "customers", progress)

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
        report.references_restored += len(logs)
        return len(logs)

    _drain(engine, references, "references", progress)

    # 3. Leads: the legacy phone string, the old link (logged, or none), no enquiry time.
    def leads(session: Session) -> int:
        rows = session.execute(
            select(Lead.id, Lead.phone_number_legacy, BackfillLeadLog.old_customer_id)
            .outerjoin(BackfillLeadLog, BackfillLeadLog.lead_id == Lead.id)
            .where(or_(Lead.phone_number_legacy.is_not(None), BackfillLeadLog.lead_id.is_not(None)))
            .order_by(Lead.id).limit(batch_size)
        ).all()  # fmt: skip
        if rows:
            session.execute(
                update(LEADS).where(LEADS.c.id == _b("b_id")).values(
                    phone_number_normalized=_b("phone"), phone_number_legacy=None, customer_id=_b("cid"),
                    enquired_at=None),
                [{"b_id": r.id, "phone": r.phone_number_legacy, "cid": r.old_customer_id} for r in rows],
                execution_options={"synchronize_session": False},
            )  # fmt: skip
            session.execute(delete(BackfillLeadLog).where(BackfillLeadLog.lead_id.in_([r.id for r in rows])))
        report.leads_restored += len(rows)
        return len(rows)

    _drain(engine, leads, "leads", progress)

    # 4. Legacy external ids the backfill registered, and customers it created that nothing uses.
    def cleanup(session: Session) -> int:
        events = cast(Table, IntakeEvent.__table__)
        removed = session.execute(delete(events).where(events.c.outcome == "legacy")).rowcount  # type: ignore[attr-defined]
        report.external_ids_removed += removed or 0
        # Kept: backfill-made customers that live intake has used since (a lead or an inbox event).
        refs = [(LEADS, "customer_id"), *customer_references()]
        used = or_(*(exists().where(tbl.c[col] == CUSTOMERS.c.id) for tbl, col in refs))
        in_use = list(
            session.execute(select(CUSTOMERS.c.id).where(CUSTOMERS.c.origin == "backfill", used)).scalars()
        )
        report.kept_for_live_intake = in_use
        gone = session.execute(delete(CUSTOMERS).where(CUSTOMERS.c.origin == "backfill", ~used)).rowcount  # type: ignore[attr-defined]
        report.customers_removed += gone or 0
        session.execute(delete(BackfillLeadLog))
        session.execute(delete(BackfillLog))
        session.execute(
            update(BackfillRun)
            .where(BackfillRun.status != "undone")
            .values(status="undone", finished_at=now())
        )
        return 0

    with_retries(engine, cleanup)
    return report


def _b(name: str) -> Any:
    return bindparam(name)


def _drain(engine: Engine, step: Any, phase: str, progress: Progress | None) -> None:
    done = 0
    while True:
        n, _ = with_retries(engine, step)
        if not n:
            return
        done += n
        if progress:
            progress(f"undo {phase}", done, None)
