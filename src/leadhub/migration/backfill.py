"""`leadhub backfill-customers`: canonicalise legacy phones, repair guide-made duplicates, link every
lead to its customer, register legacy external ids, and set customer attributes as a replay would.

Online and batched: keyset batches by primary key, one short transaction per batch, so the old app
and live intake keep writing. Resumable: the run's phase and cursor commit with each batch, and every
step is idempotent, so a run killed at any point continues to the same end state. Everything it
replaces is logged (backfill_lead_log, backfill_log, leads_master.phone_number_legacy) for `--undo`.

Phases: keys (canonical key of each customer whose stored phone is not canonical) -> merge (one
customer per key, the oldest survives; invalid ones detached) -> leads (canonicalise, link, enquiry
time, legacy external ids, attribute staging) -> attributes (earliest non-empty values) -> done.
On PostgreSQL the leads phase is leadhub.migration.pg_leads, which also sets the attributes (nothing
is staged, so the attributes phase finds nothing to do).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Engine,
    Table,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from leadhub.customers.names import clean_name, clean_text
from leadhub.db.dialect import dialect_name, upsert
from leadhub.db.models import (
    BackfillCustomerAttrs,
    BackfillCustomerKey,
    BackfillLeadLog,
    BackfillLog,
    BackfillRun,
    Customer,
    IntakeStatus,
    Lead,
    Source,
)
from leadhub.errors import LeadhubError
from leadhub.migration import bulk, pg_leads, set_aside
from leadhub.migration.common import (
    CUSTOMERS,
    LEADS,
    Progress,
    canonical,
    customer_references,
    now,
    order_key,
    provider_time,
    read_phone,
    undo_link,
    with_retries,
)

log = logging.getLogger("leadhub.backfill")
TARGET_TRANSACTION_S = 0.5
# Merge transactions at once on PostgreSQL (each a disjoint set of keys).
MERGE_WORKERS = 2
# The PostgreSQL leads phase's target for its slowest step (pg_leads caps batches at 20,000 leads,
# which on the 2-core machine usually binds first): measured 5% faster at 200,000 leads than 0.5 s
# before the cap, the longest transaction 1.05-1.37 s at 1,000,000 leads (docs/benchmarks.md).
LEADS_TARGET_TRANSACTION_S = 1.0
DEFAULT_BATCH = 5000
Batch = tuple[int, int, dict[str, Any]]  # (last key done, rows read, counters to add to the report)
PHASES = ("keys", "merge", "leads", "attributes", "done")
# Legacy source_type -> the inbox source live intake uses for that vendor's external ids.
EXTERNAL_ID_SOURCES = {"knowlarity_call": "knowlarity", "meta_form": "meta"}


@dataclass
class BackfillReport:
    run_id: int = 0
    resumed: bool = False
    leads_scanned: int = 0
    leads_changed: int = 0
    leads_linked: int = 0
    leads_skipped_concurrent: int = 0
    customers_created: int = 0
    customers_merged: int = 0
    customers_detached: int = 0
    customers_rekeyed: int = 0
    customers_attributes_set: int = 0
    external_ids_registered: int = 0
    batches: int = 0
    longest_transaction_s: float = 0.0
    unlinked_by_reason: dict[str, int] = field(default_factory=dict)
    # PostgreSQL: indexes and foreign keys set aside while the leads were written, and put back
    set_aside: list[str] = field(default_factory=list)
    put_back: list[str] = field(default_factory=list)
    put_back_s: float = 0.0

    @property
    def changed_anything(self) -> bool:
        return any((self.leads_changed, self.customers_created, self.customers_merged, self.customers_detached,
                    self.customers_rekeyed, self.customers_attributes_set, self.external_ids_registered))  # fmt: skip

    def add(self, other: dict[str, Any]) -> None:
        for key, value in other.items():
            if key == "unlinked_by_reason":
                for reason, n in value.items():
                    self.unlinked_by_reason[reason] = self.unlinked_by_reason.get(reason, 0) + n
            elif isinstance(value, int) and not isinstance(value, bool):
                setattr(self, key, getattr(self, key) + value)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "changed_anything": self.changed_anything}


def run_backfill(
    engine: Engine,
    *,
    batch_size: int | None = None,
    region: str = "IN",
    progress: Progress | None = None,
    set_aside_mode: set_aside.Mode = set_aside.Mode.AUTO,
) -> BackfillReport:
    """Run (or resume) the backfill to the end. Commits per batch; safe beside live writers.

    `batch_size` None: the leads phase on PostgreSQL sizes its batches by time; the other phases
    (and SQLite) use DEFAULT_BATCH rows. `set_aside_mode`: whether the PostgreSQL leads phase drops
    leadhub's staff-list indexes and the foreign keys its writes check, and builds them again at its
    end (leadhub.migration.set_aside)."""
    report = BackfillReport()
    run = _start_or_resume(engine, report)
    phase = run["phase"]
    fixed = batch_size or DEFAULT_BATCH
    if phase == "keys":
        _phase_keys(engine, report, run, fixed, region, progress)
        phase = _advance(engine, report, "merge")
    if phase == "merge":
        _phase_merge(engine, report, fixed, progress)
        phase = _advance(engine, report, "leads")
    if phase == "leads":
        _phase_leads(engine, report, run, batch_size, region, progress, set_aside_mode)
        phase = _advance(engine, report, "attributes")
    # Whatever this run or a killed one set aside is back before the run can finish.
    report.put_back, report.put_back_s = set_aside.put_back(engine)
    if phase == "attributes":  # SQLite (PostgreSQL sets attributes in the leads phase: nothing staged)
        _phase_attributes(engine, report, run, fixed, progress)
        _advance(engine, report, "done")
    return report


def _start_or_resume(engine: Engine, report: BackfillReport) -> dict[str, Any]:
    def work(session: Session) -> dict[str, Any]:
        if session.execute(select(BackfillRun.id).where(BackfillRun.status == "undoing").limit(1)).first():
            raise LeadhubError(
                "an undo of the backfill was interrupted: run `leadhub backfill-customers --undo` again to "
                "finish it before backfilling"
            )
        run = session.execute(
            select(BackfillRun)
            .where(BackfillRun.status == "running")
            .order_by(BackfillRun.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if run is None:
            run = BackfillRun(status="running", phase="keys", cursor=None, stats={}, started_at=now())
            session.add(run)
            session.flush()
        else:
            report.resumed = True
        report.run_id = run.id
        return {"id": run.id, "phase": run.phase, "cursor": run.cursor}

    return with_retries(engine, work)[0]


def _advance(engine: Engine, report: BackfillReport, phase: str) -> str:
    def work(session: Session) -> None:
        values: dict[str, Any] = {"phase": phase, "cursor": None}
        if phase == "done":
            values |= {"status": "finished", "finished_at": now(), "stats": report.to_json()}
            session.execute(delete(BackfillCustomerAttrs))
        session.execute(update(BackfillRun).where(BackfillRun.id == report.run_id).values(**values))

    with_retries(engine, work)
    return phase


def _save_cursor(session: Session, run_id: int, cursor: int) -> None:
    session.execute(update(BackfillRun).where(BackfillRun.id == run_id).values(cursor=str(cursor)))


def _note(report: BackfillReport, seconds: float) -> None:
    report.batches += 1
    report.longest_transaction_s = max(report.longest_transaction_s, seconds)


def _count(engine: Engine, *query: Any) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(*query)).scalar_one())


# --- keys: which customers are stored under a non-canonical phone ------------------------------------


def _keyset_phase(engine: Engine, report: BackfillReport, run: dict[str, Any], phase: str, total: int,
                  step: Callable[[Session, int], Batch | None], progress: Progress | None) -> None:  # fmt: skip
    """Drive `step` batch by batch from the run's saved cursor; each batch and its cursor commit together."""
    after = int(run["cursor"] or 0) if run["phase"] == phase else 0
    done = 0
    while True:

        def work(session: Session, after: int = after) -> Batch | None:
            batch = step(session, after)
            if batch is not None:
                _save_cursor(session, report.run_id, batch[0])
            return batch

        result, seconds = with_retries(engine, work)
        if result is None:
            return
        _note(report, seconds)
        after, n, stats = result
        report.add(stats)  # counted only once committed, never twice on a retried batch
        done += n
        if progress:
            progress(phase, done, total)


def _phase_keys(engine: Engine, report: BackfillReport, run: dict[str, Any], batch: int, region: str,
                progress: Progress | None) -> None:  # fmt: skip
    def step(session: Session, after: int) -> Batch | None:
        rows = session.execute(
            select(Customer.id, Customer.phone_number_normalized)
            .where(Customer.id > after).order_by(Customer.id).limit(batch)
        ).all()  # fmt: skip
        if not rows:
            return None
        staged = []
        for customer_id, phone in rows:
            e164, reason = canonical(phone, region)
            if e164 != phone:
                staged.append({"customer_id": customer_id, "e164": e164, "reason": reason})
        bulk.insert_keys(session, staged)
        return int(rows[-1][0]), len(rows), {}

    _keyset_phase(engine, report, run, "keys", _count(engine, Customer), step, progress)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:  # fresh statistics, or the merge's plans guess wildly
            connection.execute(text("ANALYZE backfill_customer_keys"))
            connection.commit()


# --- merge: one customer per canonical phone; invalid ones detached ----------------------------------


def _phase_merge(engine: Engine, report: BackfillReport, batch: int, progress: Progress | None) -> None:
    total, done = _count(engine, BackfillCustomerKey), 0
    if engine.dialect.name == "postgresql":  # every valid key; what is left below is the detaching
        done = _merge_keys_pg(engine, report, batch, total, progress)
    # Groups per transaction adapt to how long the last one took, so no transaction holds its row
    # locks for long however many customers a phone has (the GitLab batch-optimizer idea, simplified).
    groups_per_tx, ceiling = 50, max(50, batch // 5)
    while True:

        def work(session: Session, groups_per_tx: int = groups_per_tx) -> int:
            keys = list(
                session.execute(
                    select(BackfillCustomerKey.e164).where(BackfillCustomerKey.e164.is_not(None))
                    .group_by(BackfillCustomerKey.e164).order_by(BackfillCustomerKey.e164).limit(groups_per_tx)
                ).scalars()
            )  # fmt: skip
            handled = 0
            for e164 in keys:
                assert e164 is not None
                handled += _merge_group(session, report, e164)
            if not keys:
                ids = list(
                    session.execute(
                        select(BackfillCustomerKey.customer_id).where(BackfillCustomerKey.e164.is_(None))
                        .order_by(BackfillCustomerKey.customer_id).limit(groups_per_tx)
                    ).scalars()
                )  # fmt: skip
                if ids and dialect_name(session) == "postgresql":
                    report.customers_detached += bulk.detach_pg(session, report.run_id, ids)
                    return len(ids)
                for customer_id in ids:
                    _detach(session, report, customer_id)
                handled = len(ids)
            return handled

        handled, seconds = with_retries(engine, work)
        if handled == 0:
            return
        _note(report, seconds)
        if seconds > TARGET_TRANSACTION_S:
            groups_per_tx = max(1, groups_per_tx // 2)
        elif seconds < TARGET_TRANSACTION_S / 3:
            groups_per_tx = min(ceiling, groups_per_tx * 2)
        done += handled
        if progress:
            progress("merge", done, total)


def _merge_keys_pg(engine: Engine, report: BackfillReport, batch: int, total: int,
                   progress: Progress | None) -> int:  # fmt: skip
    """Merge every valid key's customers (PostgreSQL), MERGE_WORKERS transactions at once.

    A customer belongs to one key, so transactions on different keys never touch the same rows (its
    leads, references and log rows are its own). Keys are read in order, a chunk at a time, and each
    chunk's transaction deletes its keys: a run stopped anywhere merges what is left when resumed.
    Sized like the sequential loop: groups per transaction adapt to the last one's time. Returns how
    many staged customers were handled. When a transaction fails, no new one starts and its error is
    raised."""
    size, ceiling, last, done = 50, max(50, batch // 5), "", 0
    failed = threading.Event()

    def merge(keys: list[str]) -> tuple[tuple[int, int, int], float]:
        if failed.is_set():
            raise RuntimeError("an earlier merge transaction failed")
        try:
            return with_retries(engine, lambda session: bulk.merge_groups_pg(session, report.run_id, keys))
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=MERGE_WORKERS, thread_name_prefix="backfill-merge") as pool:
        pending: deque[tuple[int, Future[tuple[tuple[int, int, int], float]]]] = deque()
        read_all = False
        try:
            while pending or not read_all:
                if not read_all and len(pending) < MERGE_WORKERS:
                    with engine.connect() as conn:
                        keys = list(conn.execute(text(bulk.NEXT_KEYS), {"last": last, "n": size}).scalars())
                    if keys:
                        last = keys[-1]
                        pending.append((len(keys), pool.submit(merge, keys)))
                    read_all = not keys
                    continue
                groups, future = pending.popleft()
                (handled, merged, rekeyed), seconds = future.result()
                report.customers_merged += merged
                report.customers_rekeyed += rekeyed
                _note(report, seconds)
                if seconds > TARGET_TRANSACTION_S:
                    size = max(1, groups // 2)
                elif seconds < TARGET_TRANSACTION_S / 3:
                    size = min(ceiling, max(size, groups * 2))
                done += handled
                if progress:
                    progress("merge", done, total)
        except BaseException:
            failed.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return done


def _customer_row(session: Session, customer_id: int) -> dict[str, Any]:
    row = session.execute(select(CUSTOMERS).where(CUSTOMERS.c.id == customer_id)).mappings().one()
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def _log(
    session: Session, report: BackfillReport, kind: str, table_name: str, row_id: int, before: Any
) -> None:
    session.add(
        BackfillLog(run_id=report.run_id, kind=kind, table_name=table_name, row_id=row_id, before=before)
    )


def _move_references(
    session: Session, report: BackfillReport, old_ids: list[int], new_id: int | None
) -> None:
    """Point every reference to `old_ids` at `new_id` (None: detach), logging what it replaces."""
    session.execute(
        upsert(session, _t(BackfillLeadLog))
        .from_select(
            ["lead_id", "run_id", "old_customer_id"],
            select(Lead.id, literal(report.run_id, BigInteger),
                   # common.undo_link: a lead an earlier run linked (it keeps a legacy string) had no link
                   case((Lead.phone_number_legacy.is_(None), Lead.customer_id))).where(Lead.customer_id.in_(old_ids)),
        )
        .on_conflict_do_nothing(index_elements=["lead_id"])
    )  # fmt: skip
    session.execute(update(LEADS).where(LEADS.c.customer_id.in_(old_ids)).values(customer_id=new_id))
    for tbl, column in customer_references():
        col = tbl.c[column]
        pk = next(iter(tbl.primary_key.columns))
        for row_id, old in session.execute(select(pk, col).where(col.in_(old_ids))).all():
            _log(session, report, "reference", tbl.name, row_id, {"column": column, "value": old})
        session.execute(update(tbl).where(col.in_(old_ids)).values({column: new_id}))


def _merge_group(session: Session, report: BackfillReport, e164: str) -> int:
    staged = list(
        session.execute(
            select(BackfillCustomerKey.customer_id).where(BackfillCustomerKey.e164 == e164)
        ).scalars()
    )
    holder = session.execute(
        select(Customer.id).where(Customer.phone_number_normalized == e164)
    ).scalar_one_or_none()
    ids = sorted({*staged, *([holder] if holder is not None else [])})
    rows = session.execute(
        select(Customer.id, Customer.created_at)
        .where(Customer.id.in_(ids))
        .order_by(Customer.id)
        .with_for_update()
    ).all()
    if rows:
        survivor = min(rows, key=lambda r: (r.created_at is None, r.created_at or 0, r.id)).id
        others = [r.id for r in rows if r.id != survivor]
        if survivor != holder:
            _log(session, report, "customer_before", "customers", survivor, _customer_row(session, survivor))
        for other in others:
            _log(session, report, "customer_merged", "customers", other, _customer_row(session, other))
        if others:
            _move_references(session, report, others, survivor)
            session.execute(delete(CUSTOMERS).where(CUSTOMERS.c.id.in_(others)))
            report.customers_merged += len(others)
        if survivor != holder:
            session.execute(
                update(CUSTOMERS).where(CUSTOMERS.c.id == survivor).values(phone_number_normalized=e164)
            )
            report.customers_rekeyed += 1
    session.execute(delete(BackfillCustomerKey).where(BackfillCustomerKey.e164 == e164))
    return len(staged)


def _detach(session: Session, report: BackfillReport, customer_id: int) -> None:
    exists = session.execute(
        select(Customer.id).where(Customer.id == customer_id).with_for_update()
    ).scalar_one_or_none()
    if exists is not None:
        _log(
            session,
            report,
            "customer_detached",
            "customers",
            customer_id,
            _customer_row(session, customer_id),
        )
        _move_references(session, report, [customer_id], None)
        session.execute(delete(CUSTOMERS).where(CUSTOMERS.c.id == customer_id))
        report.customers_detached += 1
    session.execute(delete(BackfillCustomerKey).where(BackfillCustomerKey.customer_id == customer_id))


# --- leads: canonicalise, link, enquiry time, legacy external ids, attribute staging -----------------


def _phase_leads(engine: Engine, report: BackfillReport, run: dict[str, Any], batch: int | None, region: str,
                 progress: Progress | None, set_aside_mode: set_aside.Mode) -> None:  # fmt: skip
    with Session(engine) as session:
        channels = {
            sid: EXTERNAL_ID_SOURCES[stype]
            for sid, stype in session.execute(select(Source.id, Source.source_type)).all()
            if stype in EXTERNAL_ID_SOURCES
        }
    total = _count(engine, Lead)
    if engine.dialect.name == "postgresql":
        # The repair path's keys and merge phases filled backfill_log from empty (a before-image of every
        # guide-made customer): with the statistics of an empty table, the recompute's before-image
        # probe ran as a nested loop over every log row, 17-29 s a batch at 200,000 leads.
        with engine.connect() as connection:
            connection.execute(text("ANALYZE backfill_log"))
            connection.commit()
        done = 0

        def on_batch(rows: int, seconds: float, stats: dict[str, Any]) -> None:
            nonlocal done
            _note(report, seconds)
            report.add(stats)  # counted only once committed, never twice on a retried batch
            done += rows
            if progress:
                progress("leads", done, total)

        after = int(run["cursor"] or 0) if run["phase"] == "leads" else 0
        if set_aside.wanted(engine, set_aside_mode, after):
            report.set_aside = set_aside.set_aside(engine, report.run_id)
        phase = pg_leads.LeadsPhase(engine, run_id=report.run_id, region=region, channels=channels)
        try:
            pg_leads.run_leads_phase(engine, phase, after=after, batch_size=batch, target_s=LEADS_TARGET_TRANSACTION_S,
                                     on_batch=on_batch)  # fmt: skip
        except BaseException:
            # Not left dropped behind a failed run (a kill -9 is the only way to leave them waiting): the
            # keys guard live writes. Whatever cannot be put back now stays waiting for the next run.
            try:
                set_aside.put_back(engine)
            except Exception:
                log.exception("putting back what the run set aside failed; the next run puts it back")
            raise
        return

    def step(session: Session, after: int) -> Batch | None:
        return _leads_batch(session, report.run_id, after, batch or DEFAULT_BATCH, region, channels)

    _keyset_phase(engine, report, run, "leads", total, step, progress)


def _leads_batch(session: Session, run_id: int, after: int, batch: int, region: str,
                 channels: dict[int, str]) -> Batch | None:  # fmt: skip
    rows = session.execute(
        select(
            Lead.id, Lead.phone_number_normalized, Lead.phone_number_legacy, Lead.customer_id, Lead.full_name,
            Lead.raw_customer_location, Lead.raw_payload["start_time"].as_string(),
            Lead.raw_payload["created_time"].as_string(), Lead.created_at, Lead.enquired_at, Lead.source_id,
            Lead.external_lead_id,
        ).where(Lead.id > after).order_by(Lead.id).limit(batch)
    ).all()  # fmt: skip
    if not rows:
        return None
    stats: dict[str, Any] = {"leads_scanned": len(rows), "unlinked_by_reason": {}}
    readings = {
        row.id: read_phone(
            row.phone_number_normalized, row.phone_number_legacy, lambda t: canonical(t, region)
        )
        for row in rows
    }
    phones = sorted({e164 for _, e164, _ in readings.values() if e164})
    stamp = now()
    stats["customers_created"] = bulk.insert_customers(session, phones, stamp)
    customer_of = bulk.customer_ids(session, phones)

    changes: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    attrs: dict[int, dict[str, Any]] = {}
    for row in rows:
        raw, e164, reason = readings[row.id]
        enquired = (
            row.enquired_at
            or provider_time({"start_time": row[6], "created_time": row[7]})
            or row.created_at
            or stamp
        )
        customer_id = customer_of[e164] if e164 else None
        phone = e164 if e164 else raw
        if e164 is None:
            key = reason or "empty"
            stats["unlinked_by_reason"][key] = stats["unlinked_by_reason"].get(key, 0) + 1
        # A kept legacy string the old app has since replaced counts too (common.undo_link).
        if (row.phone_number_normalized, row.customer_id, row.enquired_at) != (
            phone,
            customer_id,
            enquired,
        ) or (row.phone_number_legacy not in (None, raw)):
            changes.append({"b_id": row.id, "b_old": row.phone_number_normalized, "phone_number_normalized": phone,
                            "phone_number_legacy": raw, "customer_id": customer_id, "enquired_at": enquired})  # fmt: skip
            logged, before = undo_link(row.customer_id, row.phone_number_legacy, raw)
            if logged:
                logs.append({"lead_id": row.id, "run_id": run_id, "old_customer_id": before})
        if customer_id is not None:
            _stage_attributes(attrs, customer_id, row.id, enquired, row.full_name, row.raw_customer_location)
            if row.external_lead_id and row.source_id in channels:
                events.append({"source": channels[row.source_id], "external_id": row.external_lead_id,
                               "status": IntakeStatus.PROCESSED.value, "outcome": "legacy", "lead_id": row.id,
                               "customer_id": customer_id, "attempts": 0, "received_at": row.created_at or stamp,
                               "processed_at": stamp})  # fmt: skip
    bulk.insert_lead_logs(session, logs)
    updated = bulk.update_leads(session, changes)
    stats["leads_changed"] = updated
    stats["leads_skipped_concurrent"] = len(changes) - updated
    stats["leads_linked"] = sum(1 for c in changes if c["customer_id"] is not None)
    stats["external_ids_registered"] = bulk.insert_events(session, events)
    bulk.merge_attributes(session, list(attrs.values()))
    return int(rows[-1].id), len(rows), stats


def _t(model: Any) -> Table:
    """The model's table: bulk statements go through Core, not the (much slower) ORM bulk path."""
    return cast(Table, model.__table__)


def _bind(name: str) -> Any:
    return bindparam(name)


def _stage_attributes(attrs: dict[int, dict[str, Any]], customer_id: int, lead_id: int, at: Any,
                      name: str | None, city: str | None) -> None:  # fmt: skip
    key = order_key(at, lead_id)
    current = attrs.setdefault(customer_id, {"customer_id": customer_id, "first_key": key, "first_at": at,
                                             "full_name": None, "name_key": None, "city": None, "city_key": None})  # fmt: skip
    if key < current["first_key"]:
        current["first_key"], current["first_at"] = key, at
    tidy_name, tidy_city = clean_name(name), clean_text(city)
    if tidy_name and (current["name_key"] is None or key < current["name_key"]):
        current["full_name"], current["name_key"] = tidy_name, key
    if tidy_city and (current["city_key"] is None or key < current["city_key"]):
        current["city"], current["city_key"] = tidy_city, key


# --- attributes: what replaying the leads oldest first through live intake would give ---------------


def _phase_attributes(engine: Engine, report: BackfillReport, run: dict[str, Any], batch: int,
                      progress: Progress | None) -> None:  # fmt: skip
    def step(session: Session, after: int) -> Batch | None:
        staged = session.execute(
            select(BackfillCustomerAttrs).where(BackfillCustomerAttrs.customer_id > after)
            .order_by(BackfillCustomerAttrs.customer_id).limit(batch)
        ).scalars().all()  # fmt: skip
        if not staged:
            return None
        current = {
            c.id: c for c in session.execute(
                select(Customer).where(Customer.id.in_([s.customer_id for s in staged])).with_for_update()
            ).scalars()
        }  # fmt: skip
        logged = set(session.execute(
            select(BackfillLog.row_id).where(BackfillLog.kind == "customer_before", BackfillLog.table_name == "customers",
                                             BackfillLog.row_id.in_(list(current)))
        ).scalars())  # fmt: skip
        updates = []
        pg = dialect_name(session) == "postgresql"
        for s in staged:
            customer = current.get(s.customer_id)
            wanted = _wanted_attributes(customer, s) if customer is not None else None
            if customer is None or wanted is None:
                continue
            if pg:
                updates.append({"b_id": customer.id, **wanted, "updated_at": now()})
                continue
            if customer.origin is None and customer.id not in logged:
                _log(
                    session,
                    report,
                    "customer_before",
                    "customers",
                    customer.id,
                    _customer_row(session, customer.id),
                )
            updates.append({"b_id": customer.id, **wanted, "updated_at": now()})
        if updates and pg:  # the statements the --emit-sql script runs too
            ids = [u["b_id"] for u in updates]
            session.execute(text(bulk.ATTRIBUTES_LOG), {"run": report.run_id, "ids": ids})
            session.execute(text(bulk.UPDATE_ATTRIBUTES), {
                "ids": ids, "fn": [u["full_name"] for u in updates], "ci": [u["city"] for u in updates],
                "ca": [u["created_at"] for u in updates], "stamp": now()})  # fmt: skip
        elif updates:
            session.execute(
                update(CUSTOMERS).where(CUSTOMERS.c.id == _bind("b_id"))
                .values({k: _bind(k) for k in ("full_name", "city", "created_at", "updated_at")}),
                updates, execution_options={"synchronize_session": False},
            )  # fmt: skip
        return staged[-1].customer_id, len(staged), {"customers_attributes_set": len(updates)}

    _keyset_phase(engine, report, run, "attributes", _count(engine, BackfillCustomerAttrs), step, progress)


def _wanted_attributes(customer: Customer, staged: BackfillCustomerAttrs) -> dict[str, Any] | None:
    """The values replay would give, or None when the customer already has them."""
    return pg_leads.wanted_attributes(customer.origin, customer.full_name, customer.city, customer.created_at,
                                      staged.full_name, staged.city, staged.first_at)  # fmt: skip


def plan_backfill(engine: Engine, *, region: str = "IN", batch: int = 10000) -> dict[str, Any]:
    """`--dry-run`: what a run would change, read-only (no locks, no writes)."""
    plan: dict[str, Any] = {"customers_to_rekey_or_merge": 0, "customers_to_detach": 0, "leads_to_change": 0,
                            "leads_to_link": 0, "unlinked_by_reason": {}}  # fmt: skip
    with Session(engine) as session:
        after = 0
        while rows := session.execute(select(Customer.id, Customer.phone_number_normalized)
                                      .where(Customer.id > after).order_by(Customer.id).limit(batch)).all():  # fmt: skip
            for _, phone in rows:
                e164, _reason = canonical(phone, region)
                if e164 is None:
                    plan["customers_to_detach"] += 1
                elif e164 != phone:
                    plan["customers_to_rekey_or_merge"] += 1
            after = rows[-1][0]
        after = 0
        while lead_rows := session.execute(
            select(Lead.id, Lead.phone_number_normalized, Lead.phone_number_legacy, Lead.customer_id, Lead.enquired_at)
            .where(Lead.id > after).order_by(Lead.id).limit(batch)
        ).all():  # fmt: skip
            for row in lead_rows:
                _, e164, reason = read_phone(row.phone_number_normalized, row.phone_number_legacy,
                                             lambda t: canonical(t, region))  # fmt: skip
                if e164 is None:
                    key = reason or "empty"
                    plan["unlinked_by_reason"][key] = plan["unlinked_by_reason"].get(key, 0) + 1
                if e164 is not None and row.customer_id is None:
                    plan["leads_to_link"] += 1
                if (
                    e164 is not None and (row.phone_number_normalized != e164 or row.customer_id is None)
                ) or row.enquired_at is None:
                    plan["leads_to_change"] += 1
            after = lead_rows[-1][0]
    return plan
