"""`leadhub verify`: the migration guide's checks and the invariants leadhub relies on.

Each check has a value, whether it must be zero, and sample ids when it fails. Exit status is
non-zero when any invariant fails.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, aliased

from leadhub.db.models import BackfillSetAside, Customer, Lead
from leadhub.migration.common import canonical, read_phone
from leadhub.phones import is_canonical


@dataclass
class Check:
    name: str
    value: int
    invariant: bool = False  # must be 0
    samples: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.invariant or self.value == 0


@dataclass
class VerifyReport:
    checks: list[Check]
    unlinked_by_reason: dict[str, int]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [{**asdict(c), "ok": c.ok} for c in self.checks],
                "unlinked_by_reason": self.unlinked_by_reason}  # fmt: skip


def unlinked_leads(engine: Engine, *, region: str = "IN", report_file: Path | None = None,
                   batch: int = 10000) -> dict[str, int]:  # fmt: skip
    """Count leads without a customer by reason; optionally write them to a CSV (lead id, value, reason)."""
    reasons: dict[str, int] = {}
    writer = None
    handle = report_file.open("w", newline="") if report_file else None
    try:
        if handle:
            writer = csv.writer(handle)
            writer.writerow(["lead_id", "value", "reason"])
        after = 0
        with Session(engine) as session:
            while True:
                rows = session.execute(
                    select(Lead.id, Lead.phone_number_normalized, Lead.phone_number_legacy)
                    .where(Lead.customer_id.is_(None), Lead.id > after).order_by(Lead.id).limit(batch)
                ).all()  # fmt: skip
                if not rows:
                    break
                for lead_id, phone, legacy in rows:
                    value, _, reason = read_phone(phone, legacy, lambda text: canonical(text, region))
                    key = reason or "valid_but_unlinked"
                    reasons[key] = reasons.get(key, 0) + 1
                    if writer:
                        writer.writerow([lead_id, value if value is not None else "", key])
                after = rows[-1][0]
    finally:
        if handle:
            handle.close()
    return reasons


def verify(engine: Engine, *, region: str = "IN", samples: int = 5) -> VerifyReport:
    checks: list[Check] = []
    with Session(engine) as session:

        def count(query: Any) -> int:
            return int(session.execute(query).scalar_one())

        def ids(query: Any) -> list[int]:
            return list(session.execute(query.limit(samples)).scalars())

        checks.append(Check("total leads", count(select(func.count()).select_from(Lead))))
        checks.append(
            Check(
                "leads linked to a customer", count(select(func.count()).where(Lead.customer_id.is_not(None)))
            )
        )
        checks.append(Check("customers", count(select(func.count()).select_from(Customer))))
        no_leads = ~select(Lead.id).where(Lead.customer_id == Customer.id).exists()
        checks.append(Check("customers without leads", count(select(func.count()).where(no_leads))))
        mismatch = (
            select(Lead.id).join(Customer, Customer.id == Lead.customer_id)
            .where(Lead.phone_number_normalized != Customer.phone_number_normalized)
        )  # fmt: skip
        checks.append(Check("leads whose phone differs from their customer's",
                            count(select(func.count()).select_from(mismatch.subquery())), True, ids(mismatch)))  # fmt: skip
        orphans = select(Lead.id).where(Lead.customer_id.is_not(None), ~select(Customer.id).where(
            Customer.id == Lead.customer_id).exists())  # fmt: skip
        checks.append(Check("leads pointing at a missing customer",
                            count(select(func.count()).select_from(orphans.subquery())), True, ids(orphans)))  # fmt: skip
        bad, dupes, after = [], [], 0
        while True:
            rows = session.execute(select(Customer.id, Customer.phone_number_normalized)
                                   .where(Customer.id > after).order_by(Customer.id).limit(10000)).all()  # fmt: skip
            if not rows:
                break
            for customer_id, phone in rows:
                if not is_canonical(phone):
                    bad.append(customer_id)
                    e164, _ = canonical(phone, region)
                    if (
                        e164
                        and session.execute(
                            select(Customer.id).where(Customer.phone_number_normalized == e164)
                        ).first()
                    ):
                        dupes.append(customer_id)
            after = rows[-1][0]
        checks.append(Check("customer phones that are not valid E.164", len(bad), True, bad[:samples]))
        checks.append(
            Check("customers duplicating another's canonical phone", len(dupes), True, dupes[:samples])
        )
        other = aliased(Customer)
        same = (
            select(func.count())
            .select_from(Customer)
            .join(
                other,
                (other.phone_number_normalized == Customer.phone_number_normalized)
                & (other.id != Customer.id),
            )
        )
        checks.append(Check("duplicate customer phones", count(same), True))  # fmt: skip
        if session.get_bind().dialect.name == "postgresql":
            invalid = count(text(
                "SELECT count(*) FROM pg_constraint WHERE conname = 'leads_master_customer_id_fkey' AND NOT convalidated"
            ))  # fmt: skip
            checks.append(Check("foreign keys not validated", invalid, True))
        # An unfinished backfill's set-aside indexes and keys (PostgreSQL; the next run puts them back).
        checks.append(Check("indexes and foreign keys waiting for the backfill to put them back",
                            count(select(func.count()).select_from(BackfillSetAside)), True))  # fmt: skip
    return VerifyReport(checks=checks, unlinked_by_reason=unlinked_leads(engine, region=region))
