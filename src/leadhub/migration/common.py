"""Pieces the backfill, verify and undo share."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, Table
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from leadhub.db.base import Base
from leadhub.db.models import Customer, Lead
from leadhub.db.types import utcnow
from leadhub.phones import PhoneError, normalize

T = TypeVar("T")
Progress = Callable[[str, int, int | None], None]  # (phase, rows done in phase, rows in phase or None)

LEADS = cast(Table, Lead.__table__)
CUSTOMERS = cast(Table, Customer.__table__)


def table(name: str) -> Table:
    return Base.metadata.tables[name]


def customer_references() -> list[tuple[Table, str]]:
    """Every (table, column) that points at customers.id, except leads_master (logged per lead)."""
    refs = []
    for tbl in Base.metadata.sorted_tables:
        for fk in tbl.foreign_keys:
            if fk.column.table.name == "customers" and tbl.name != "leads_master":
                refs.append((tbl, fk.parent.name))
    return refs


def canonical(raw: str | None, region: str) -> tuple[str | None, str | None]:
    """(E.164, None) or (None, reason). normalize: no ParsedPhone for a number the fast path knows."""
    try:
        return normalize(raw, region), None
    except PhoneError as error:
        return None, error.reason.value


Reading = tuple[str | None, str | None, str | None]  # (the string read, its E.164 or None, why not)


def read_phone(
    phone: str | None, legacy: str | None, canonicalise: Callable[[str | None], tuple[str | None, str | None]]
) -> Reading:
    """The phone string the backfill reads for a lead, and what `canonicalise` makes of it. Once the
    backfill has written a lead, its legacy string is kept in `phone_number_legacy` and read again (a
    second run changes nothing); but when the lead's phone is no longer what the backfill wrote (the
    old app edited it since), the phone as it is now is the lead's phone, and it becomes the string
    kept. Each string is canonicalised once."""
    if legacy is not None:
        e164, reason = canonicalise(legacy)
        if phone == (e164 or legacy):
            return legacy, e164, reason
    return (phone, *canonicalise(phone))


def undo_link(
    old_customer_id: int | None, old_legacy: str | None, raw: str | None
) -> tuple[bool, int | None]:
    """Whether a run that changes a lead logs it for undo, and the link undo gives back.

    Undo finds a lead by the legacy string kept (`raw`, which becomes `phone_number_legacy`) or by
    its log row, and restores the link logged, or none. So a lead is logged when it had a link or
    keeps no string. The first row logged for a lead is the one kept (the SQL inserts ON CONFLICT DO
    NOTHING). A lead an earlier run changed without logging it (it kept a string then, and had no link)
    had no link before the backfill: the link it has now is one the backfill made, and is not given
    back. A run also counts a lead as changed when the legacy string it keeps is no longer the string
    read (the old app replaced the phone, even of a lead that has no customer), so undo gives back the
    edit. Used by the SQLite path; pg_leads.WRITE_LEADS, the merge's moves (bulk.move_statements,
    backfill._move_references) and the --emit-sql script say the same in SQL."""
    before = old_customer_id if old_legacy is None else None
    return old_customer_id is not None or raw is None, before


def provider_time(payload: Any) -> datetime | None:
    """The enquiry time the provider recorded: Knowlarity `start_time`, Meta `created_time`.

    Knowlarity: '2025-12-06 11:11:21+05:30' (../shared/providers/knowlarity.md §1.2); Meta Graph:
    '2024-01-01T03:30:00+0000' (../shared/providers/meta.md). Unparseable values are ignored.
    """
    if not isinstance(payload, dict):
        return None
    for key in ("start_time", "created_time"):
        value = payload.get(key)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and value.strip():
            text = value.strip().replace(" ", "T", 1)
            if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # +0000 -> +00:00
                text = f"{text[:-2]}:{text[-2:]}"
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                continue
            return parsed.astimezone(UTC) if parsed.tzinfo else None
    return None


def order_key(at: datetime, lead_id: int) -> str:
    """Sortable text for (enquired_at, id): the earlier lead has the smaller key."""
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}|{lead_id:020d}"


class ConcurrentChange(Exception):
    """A live writer changed a row a batch was about to write: the batch is retried from the start."""


def with_retries(engine: Engine, work: Callable[[Session], T], *, attempts: int = 5) -> tuple[T, float]:
    """Run one batch in its own transaction; retry on deadlocks and on a live writer winning a race.

    Returns the result and the seconds the committed transaction took."""
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        with Session(engine) as session:
            try:
                result = work(session)
                session.commit()
                return result, time.perf_counter() - started
            except (IntegrityError, OperationalError, DBAPIError) as error:
                session.rollback()
                if attempt == attempts or not _retryable(error):
                    raise
                time.sleep(0.05 * attempt)
            except ConcurrentChange:
                session.rollback()
                if attempt == attempts:
                    raise
                time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def _retryable(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return any(
        s in text for s in ("deadlock", "could not serialize", "duplicate key", "unique constraint", "locked")
    )


def now() -> datetime:
    return utcnow()


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
