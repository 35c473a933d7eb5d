"""The leads phase on PostgreSQL: each lead row written once, customers born with their attributes.

Per keyset batch of leads, four steps, each a short transaction on a connection of its own, so that
the steps of neighbouring batches run at once (batch n+1's customers are made while batch n's leads
are written, batch n-1's customers recomputed and batch n-2's external ids registered):

1. Read (one batch ahead): Python reads the batch and works out each lead's canonical phone
   (distinct strings only, cached), enquiry time, tidied name and city: the same functions the live
   intake and the SQLite path use.
2. Create: the batch's leads that have a phone go to a temporary table by COPY; customers for the
   phones that have none are created with the attributes replay gives (earliest enquiry, earliest
   real name and city among the batch's leads) and committed; each phone's customer is looked up,
   with that replay of the batch's leads of the phone, and Python keeps the leads whose phone,
   customer or enquiry time must change.
3. Write: those leads go to a temporary table by COPY; one UPDATE sets each one's phone, legacy
   string, customer and enquiry time together (guarded: a row a live writer changed since it was
   read is skipped), its undo log row in the same statement. Customers the leads left (rare: the old
   app re-numbered a linked lead) are recomputed in the same transaction.
4. Once the write has committed, recompute: customers made before the batch that it touched take
   the batch's replay on top of the one they have (Replays), or, when the run cannot vouch for what
   they have, are recomputed from all their leads the backfill has reached (Python reads them, the
   same rule as ever); written only when they change, guarded against a concurrent writer (retried
   if one won). Then register: the batch's legacy external ids go into the inbox and the run's
   cursor moves past the batch.

Batches are sized by time (the target the caller gives per write) unless a size is given. The
cursor only passes leads whose four steps have committed, so a killed run resumes where it stopped:
a batch written but not yet registered is read again, finds nothing to change, and is recomputed
and registered. A customer made in step 2 whose leads were not written yet is linked on resume.
"""

from __future__ import annotations

import re
import sys
import threading
from array import array
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from leadhub.customers.names import clean_name, clean_text
from leadhub.migration import bulk
from leadhub.migration.common import (
    ConcurrentChange,
    canonical,
    now,
    provider_time,
    read_phone,
    with_retries,
)

# At most 20,000 leads a batch: four batches are in memory at once (read, created, written,
# followed up). Measured at 200,000 leads, 20,000 took as long as 100,000 (6.2 s against 6.1 s), with a
# peak RSS of 232 MB against 304 MB and the longest transaction 0.65 s against 1.17 s.
MIN_BATCH, MAX_BATCH, FIRST_BATCH = 1_000, 20_000, 5_000
FOLLOW_UPS_BEHIND = 2  # written batches whose recompute and registration may still be pending
# Batches written at once when sized by time. One: measured on the 2-core machine at 200,000 leads,
# two writers took longer (31 s against 29 s), because a person's leads are spread over the whole
# table, so two batches in flight share customers and the second waits on the first's row locks.
WRITERS = 1
GIL_SWITCH_S = 0.0005
# Entries per string cache; cleared when full, so memory stays flat (203 MB peak at 200,000 leads,
# 232 MB with 200,000 entries).
_CACHE_LIMIT = 50_000
T = TypeVar("T")

# JIT off: mid-run the statistics of leads_master still say customer_id is always NULL, the planner
# overestimates, and compiling a batch's statements cost more than running them.
_STAGING = """
SET LOCAL jit = off;
CREATE TEMP TABLE IF NOT EXISTS backfill_batch (
  id bigint, e164 text, enq timestamptz, name text, city text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS backfill_changes (
  id bigint, old_phone text, old_cid bigint, old_enq timestamptz, old_raw text, raw text, phone text, cid bigint,
  enq timestamptz
) ON COMMIT DELETE ROWS;
"""
_COPY_BATCH = "COPY backfill_batch (id, e164, enq, name, city) FROM STDIN"
_COPY_CHANGES = (
    "COPY backfill_changes (id, old_phone, old_cid, old_enq, old_raw, raw, phone, cid, enq) FROM STDIN"
)


def _micro(sql: str) -> str:
    """US(x) in a statement: the timestamp x as whole microseconds since 1970, exact (extract gives a
    numeric), the form Python compares and hashes times in here."""
    return re.sub(r"US\(([^()]*)\)", r"(extract(epoch FROM \1) * 1000000)::bigint", sql)


# Customers for the batch's phones that have none, in phone order (every distinct phone is offered, as
# the --emit-sql script does, so both paths draw the same ids), with what replaying the batch's leads
# oldest first gives them; and each of the batch's other phones with its customer, one index probe a
# phone (a join could hash all of customers on every batch). One statement: the look-up sees the
# customers as the statement began, so a phone whose customer a live writer committed meanwhile comes
# back without one, and CUSTOMER_OF looks it up again. The batch holds its leads that have a phone.
CREATE_AND_FIND = _micro("""
WITH named AS (
  SELECT DISTINCT ON (e164) e164, name, enq, id FROM backfill_batch WHERE name IS NOT NULL ORDER BY e164, enq, id
), placed AS (
  SELECT DISTINCT ON (e164) e164, city, enq, id FROM backfill_batch WHERE city IS NOT NULL ORDER BY e164, enq, id
), g AS (
  SELECT b.e164, b.first, n.name, n.enq AS name_at, n.id AS name_id, p.city, p.enq AS city_at, p.id AS city_id
  FROM (SELECT e164, min(enq) AS first FROM backfill_batch GROUP BY e164) AS b
  LEFT JOIN named n ON n.e164 = b.e164 LEFT JOIN placed p ON p.e164 = b.e164
), made AS (
  INSERT INTO customers (phone_number_normalized, origin, full_name, city, created_at, updated_at)
  SELECT e164, 'backfill', name, city, first, %(stamp)s FROM g ORDER BY e164 COLLATE "C"
  ON CONFLICT (phone_number_normalized) DO NOTHING RETURNING id, phone_number_normalized
)
SELECT g.e164, coalesce(m.id, (SELECT c.id FROM customers c WHERE c.phone_number_normalized = g.e164)),
       m.id IS NOT NULL, US(g.first), g.name, US(g.name_at), g.name_id, g.city, US(g.city_at), g.city_id
FROM g LEFT JOIN made m ON m.phone_number_normalized = g.e164
""")
CUSTOMER_OF = """
SELECT phone_number_normalized, id FROM customers WHERE phone_number_normalized = ANY(CAST(%(phones)s AS text[]))
"""
# The leads that need a change, each updated once (phone, legacy string, customer, enquiry time;
# skipped if a live writer changed it since it was read), with its undo log row (common.undo_link: the
# first one kept; a lead an earlier run changed without a log row had no link before the backfill).
# Returns how many were updated, how many of those are linked, and the customers that updated leads
# moved away from.
WRITE_LEADS = """
WITH updated AS (
  UPDATE leads_master l
  SET phone_number_normalized = b.phone, phone_number_legacy = b.raw, customer_id = b.cid, enquired_at = b.enq
  FROM backfill_changes b
  WHERE l.id = b.id AND l.id > :after AND l.id <= :last
    AND l.phone_number_normalized IS NOT DISTINCT FROM b.old_phone
    AND l.customer_id IS NOT DISTINCT FROM b.old_cid AND l.enquired_at IS NOT DISTINCT FROM b.old_enq
  RETURNING l.id, l.customer_id, b.old_cid, b.old_raw, b.raw
), logged AS (
  INSERT INTO backfill_lead_log (lead_id, run_id, old_customer_id)
  SELECT id, :run, CASE WHEN old_raw IS NULL THEN old_cid END FROM updated WHERE old_cid IS NOT NULL OR raw IS NULL
  ON CONFLICT (lead_id) DO NOTHING
)
SELECT count(*), count(customer_id),
       array_agg(DISTINCT old_cid) FILTER (WHERE old_cid IS NOT NULL AND old_cid IS DISTINCT FROM customer_id)
FROM updated
"""
# The legacy external ids of a committed batch, registered in the inbox from what the batch wrote (each
# lead's customer as committed), and the run's cursor moved past the batch in the same transaction.
# A second connection runs this while the next batch's leads are written: on the 2-core machine the
# inbox rows and their foreign-key checks were a fifth of the lead statement's time.
REGISTER = """
WITH registered AS (
  INSERT INTO intake_events (source, external_id, status, outcome, lead_id, customer_id, attempts, received_at,
                             processed_at)
  SELECT ch.source, l.external_lead_id, 'processed', 'legacy', l.id, l.customer_id, 0,
         coalesce(l.created_at, :stamp), :stamp
  FROM leads_master l
  JOIN unnest(CAST(:sources AS bigint[]), CAST(:channels AS text[])) AS ch(source_id, source)
    ON ch.source_id = l.source_id
  WHERE l.id > :after AND l.id <= :last AND l.customer_id IS NOT NULL AND l.external_lead_id <> ''
  ORDER BY l.id
  ON CONFLICT (source, external_id) DO NOTHING RETURNING 1
), moved AS (
  UPDATE backfill_runs SET cursor = :last WHERE id = :run AND coalesce(cursor::bigint, 0) < :last
)
SELECT count(*) FROM registered
"""
# Customers that existed before a batch and that it linked leads to (or moved leads away from), locked
# in id order before their leads are read. NO KEY UPDATE does not block the next batch's foreign-key
# checks, so the next batch's leads are written meanwhile.
LOCK_TOUCHED = _micro("""
SELECT c.id, c.origin, c.full_name, c.city, US(c.created_at) FROM customers c WHERE c.id = ANY(CAST(%(ids)s AS bigint[]))
ORDER BY c.id FOR NO KEY UPDATE OF c
""")
# Every lead of theirs the backfill has reached (those have an enquiry time). OFFSET 0 keeps the
# lateral subquery an index probe per customer (flattened, it became a hash join over every lead in
# the table, on every batch).
TOUCHED = _micro("""
SELECT c.id, l.id, US(l.enquired_at), l.full_name, l.raw_customer_location
FROM customers c
CROSS JOIN LATERAL (SELECT id, enquired_at, full_name, raw_customer_location FROM leads_master
                    WHERE customer_id = c.id AND enquired_at IS NOT NULL OFFSET 0) AS l
WHERE c.id = ANY(CAST(%(ids)s AS bigint[]))
""")
UPDATE_ATTRIBUTES = _micro("""
UPDATE customers c SET full_name = v.fn, city = v.ci, created_at = timestamptz 'epoch' + v.ca * interval '1 microsecond',
                       updated_at = :stamp
FROM unnest(CAST(:ids AS bigint[]), CAST(:fn AS text[]), CAST(:ci AS text[]), CAST(:ca AS bigint[]),
            CAST(:ofn AS text[]), CAST(:oci AS text[]), CAST(:oca AS bigint[])) AS v(id, fn, ci, ca, ofn, oci, oca)
WHERE c.id = v.id AND (c.full_name, c.city, US(c.created_at)) IS NOT DISTINCT FROM (v.ofn, v.oci, v.oca)
""")


@dataclass
class Prepared:
    """One batch as read and worked out in Python, ready to apply."""

    after: int
    last: int
    rows: int
    data: str  # the leads that have a phone, for CREATE_AND_FIND, in COPY text format
    # Per lead: its phone (E.164 or None), whether its stored phone and enquiry time already are what
    # the backfill writes, its customer before, and its backfill_changes row around the new customer.
    leads: list[tuple[str | None, bool, int | None, str, str]]
    stamp: datetime
    unlinked: dict[str, int] = field(default_factory=dict)


@dataclass
class Linked:
    """A batch's customers, made and committed, and its leads' changes worked out."""

    created: list[int]  # customers this batch made
    # Customers made before this batch that it links leads to, with its replay of them (None: recompute
    # from all their leads).
    touched: dict[int, Replay | None]
    changes: int  # leads that need a change
    data: str  # those leads, in COPY text format


Key = tuple[int, int]  # a lead's place in replay order: (enquiry time in microseconds since 1970, id)
# A customer's attributes: full_name, city, created_at in microseconds since 1970.
Values = tuple[str | None, str | None, int]


class Replay:
    """What replaying some leads of one customer oldest first gives: the earliest enquiry time, and the
    earliest real name and city with the place of the lead that gave each (None: none had one)."""

    __slots__ = ("city", "city_key", "first", "name", "name_key")

    def __init__(self, first: int, name: str | None, name_key: Key | None, city: str | None,
                 city_key: Key | None) -> None:  # fmt: skip
        self.first, self.name, self.name_key, self.city, self.city_key = first, name, name_key, city, city_key

    def merge(self, other: Replay) -> None:
        """Other leads of the same customer (a lead counted twice changes nothing)."""
        if other.first < self.first:
            self.first = other.first
        if other.name_key is not None and (self.name_key is None or other.name_key < self.name_key):
            self.name, self.name_key = other.name, other.name_key
        if other.city_key is not None and (self.city_key is None or other.city_key < self.city_key):
            self.city, self.city_key = other.city, other.city_key

    def values(self) -> Values:
        return self.name, self.city, self.first


def fingerprint(values: Values) -> int:
    """A customer's attributes as one integer, never 0 (Replays' mark for a customer not known)."""
    return hash(values) | 1


class Replays:
    """Per customer, where the replay of its leads reached so far found its name and city, and a hash of
    the attributes that replay gave it: enough to add a batch's leads to a customer without reading
    its other leads again. Only a hint: a customer whose row no longer has those attributes (a person
    or live intake changed it, or the batch that made it was retried) or that is not here (a resumed
    run, or one dropped to keep memory flat) is recomputed from all its leads.

    Five integers a customer in pages of flat arrays (a dict of tuples took about 200 bytes a customer):
    about 20 MB for the 486,000 customers of a 1,000,000-lead run, at most _MAX_PAGES pages (40 MB)."""

    _SHIFT = 12
    _WIDTH = 5  # fingerprint (0: not known), name time, name lead, city time, city lead
    _MAX_PAGES = 256

    def __init__(self) -> None:
        self.pages: dict[int, array[int]] = {}

    def _slot(self, cid: int) -> tuple[int, int]:
        """The customer's page number, and where its integers start in that page."""
        return cid >> self._SHIFT, (cid & ((1 << self._SHIFT) - 1)) * self._WIDTH

    def get(self, cid: int) -> tuple[int, Key | None, Key | None] | None:
        """(fingerprint of the attributes, name key, city key), or None when not known."""
        number, at = self._slot(cid)
        page = self.pages.get(number)
        if page is None or not page[at]:
            return None
        return (page[at], (page[at + 1], page[at + 2]) if page[at + 2] else None,
                (page[at + 3], page[at + 4]) if page[at + 4] else None)  # fmt: skip

    def put(self, cid: int, values: Values, name_key: Key | None, city_key: Key | None) -> None:
        number, at = self._slot(cid)
        page = self.pages.get(number)
        if page is None:
            if len(self.pages) >= self._MAX_PAGES:
                self.pages.clear()  # forget all: those customers are recomputed in full when touched
            page = self.pages.setdefault(number, array("q", bytes(8 * self._WIDTH << self._SHIFT)))
        page[at : at + self._WIDTH] = array("q", (
            fingerprint(values), *(name_key or (0, 0)), *(city_key or (0, 0))
        ))  # fmt: skip

    def forget(self, cids: list[int]) -> None:
        for cid in cids:
            number, at = self._slot(cid)
            page = self.pages.get(number)
            if page is not None:
                page[at] = 0


_MISSING = object()


class _Cache:
    def __init__(self, compute: Callable[[Any], Any]) -> None:
        self.compute = compute
        self.values: dict[Any, Any] = {}

    def __call__(self, key: Any) -> Any:
        value = self.values.get(key, _MISSING)  # most phones are new: a raised KeyError costs more
        if value is _MISSING:
            if len(self.values) >= _CACHE_LIMIT:
                self.values.clear()
            value = self.values[key] = self.compute(key)
        return value


class LeadsPhase:
    """Drives the PostgreSQL leads phase from a cursor to the end of the table."""

    def __init__(self, engine: Engine, *, run_id: int, region: str, channels: dict[int, str]) -> None:
        self.engine = engine
        self.run_id = run_id
        self.channels = channels
        self.phone = _Cache(lambda raw: canonical(raw, region))
        self.name = _Cache(clean_name)
        self.city = _Cache(clean_text)
        self.replays = Replays()

    # --- read and work out (runs one batch ahead, on its own connection) ----------------------------

    def prepare(self, after: int, size: int) -> Prepared | None:
        with self.engine.connect() as conn:
            raw = cast(psycopg.Connection[Any], conn.connection.dbapi_connection)
            cursor = raw.cursor()
            # Times as ISO text, which the COPY reads back to the same instant: Python only passes them on.
            cursor.execute("SET LOCAL DateStyle = ISO")
            cursor.execute(
                "SELECT id, phone_number_normalized, phone_number_legacy, customer_id, enquired_at::text, full_name, "
                "raw_customer_location, raw_payload->>'start_time', raw_payload->>'created_time', created_at::text "
                "FROM leads_master WHERE id > %s ORDER BY id LIMIT %s",
                (after, size),
            )
            fetched = cursor.fetchall()
            conn.rollback()
        if not fetched:
            return None
        stamp = now()
        stamp_text = stamp.isoformat()
        rows: list[str] = []
        leads: list[tuple[str | None, bool, int | None, str, str]] = []
        unlinked: dict[str, int] = {}
        phone_of, name_of, city_of = self.phone, self.name, self.city
        for lead_id, phone, legacy, cid, enquired, name, location, start, created_time, created_at in fetched:
            source, e164, reason = read_phone(phone, legacy, phone_of)
            if enquired is not None:
                enq = enquired
            else:
                at = (
                    provider_time({"start_time": start, "created_time": created_time})
                    if start or created_time
                    else None
                )
                enq = at.isoformat() if at is not None else created_at or stamp_text
            if e164 is None:
                why = reason or "empty"
                unlinked[why] = unlinked.get(why, 0) + 1
            else:
                rows.append(f"{lead_id}\t{e164}\t{enq}\t{_text(name_of(name))}\t{_text(city_of(location))}")
            kept = _text(source)
            leads.append((
                # done: phone and enquiry time are what the backfill writes, and the legacy string kept
                # is still the one read (the old app may have replaced it: common.undo_link)
                e164, phone == (e164 or source) and enquired is not None and legacy in (None, source), cid,
                f"{lead_id}\t{kept if phone is source else _text(phone)}\t{_NULL if cid is None else cid}\t"
                f"{_NULL if enquired is None else enquired}\t{kept if legacy is source else _text(legacy)}\t{kept}\t"
                f"{e164 or kept}\t",
                f"\t{enq}",
            ))  # fmt: skip
        rows.append("")
        return Prepared(after=after, last=int(fetched[-1][0]), rows=len(fetched), data="\n".join(rows),
                        leads=leads, stamp=stamp, unlinked=unlinked)  # fmt: skip

    # --- the steps (each its own transaction, on its own connection) ---------------------------------

    @staticmethod
    def _copy(session: Session, sql: str, data: str) -> None:
        raw = cast(psycopg.Connection[Any], session.connection().connection.dbapi_connection)
        with raw.cursor() as cursor:
            cursor.execute(_STAGING)
            with cursor.copy(sql) as copy:
                copy.write(data)

    def create(self, session: Session, batch: Prepared) -> Linked:
        """The customers for the batch's new phones, committed before its leads are written (the
        previous batch's leads are being written meanwhile), and the leads that need a change."""
        self._copy(session, _COPY_BATCH, batch.data)
        created: list[int] = []
        customer_of: dict[str, int | None] = {}
        touched: dict[int, Replay | None] = {}
        missing: list[str] = []
        replays = self.replays
        raw = cast(psycopg.Connection[Any], session.connection().connection.dbapi_connection)
        with raw.cursor() as cursor:
            cursor.execute(CREATE_AND_FIND, {"stamp": batch.stamp})
            for phone, cid, made, first, name, name_at, name_id, city, city_at, city_id in cursor:
                customer_of[phone] = cid
                name_key = None if name_id is None else (name_at, name_id)
                city_key = None if city_id is None else (city_at, city_id)
                if made:
                    created.append(cid)
                    replays.put(cid, (name, city, first), name_key, city_key)
                elif cid is not None:
                    touched[cid] = Replay(first, name, name_key, city, city_key)
                else:
                    missing.append(phone)
            if missing:  # made by a live writer while the statement ran: recomputed in full (no replay known)
                cursor.execute(CUSTOMER_OF, {"phones": missing})
                for phone, cid in cursor.fetchall():
                    customer_of[phone] = cid
                    touched[cid] = None  # the replay above was for no customer
        rows: list[str] = []
        for e164, phone_and_time_done, old_cid, head, tail in batch.leads:
            cid = customer_of.get(e164) if e164 is not None else None
            if not phone_and_time_done or cid != old_cid:
                rows.append(f"{head}{_NULL if cid is None else cid}{tail}")
        rows.append("")
        return Linked(created=created, touched=touched, changes=len(rows) - 1, data="\n".join(rows))

    def apply(
        self, session: Session, batch: Prepared, linked: Linked
    ) -> tuple[dict[str, Any], dict[int, Replay | None]]:
        """The batch's leads, linked to their customers; returns the counts and the customers, made
        before this batch, whose attributes `recompute` recomputes once this has committed, each with
        the replay of the batch's leads of it."""
        updated, with_customer, moved, left = 0, 0, [], 0
        touched = linked.touched
        if linked.changes:
            self._copy(session, _COPY_CHANGES, linked.data)
            updated, with_customer, moved = session.execute(
                text(WRITE_LEADS), {"after": batch.after, "last": batch.last, "run": self.run_id}
            ).one()
            if updated < linked.changes:
                # A live writer changed some of the batch's leads first: this batch's replays may count
                # leads that are not their customers', so those customers are recomputed in full, here
                # (touched) and later (forgotten; a recompute of an earlier batch may remember them
                # again meanwhile, from leads that are theirs).
                self.replays.forget([*linked.created, *linked.touched])
                touched = dict.fromkeys(linked.touched)
        if moved:
            # Customers the batch's leads left (the old app re-numbered them): recomputed in this
            # transaction, because nothing but the write's result names them (a run resumed after it
            # would find nothing to write). Rare: only leads whose number changed under their link.
            self.replays.forget(moved)
            left = self._attributes(session, sorted(moved), {}, batch.stamp)
        stats = {
            "leads_scanned": batch.rows,
            "unlinked_by_reason": batch.unlinked,
            "customers_created": len(linked.created),
            "leads_changed": updated,
            "leads_skipped_concurrent": linked.changes - updated,
            "leads_linked": with_customer,
            "customers_attributes_set": left,
        }
        return stats, touched

    def recompute(self, session: Session, batch: Prepared, touched: dict[int, Replay | None]) -> int:
        """Once the batch has committed: the attributes of the customers made before it that it touched,
        recomputed from their committed leads. Returns how many changed."""
        session.execute(text("SET LOCAL jit = off"))  # see _STAGING
        return self._attributes(session, sorted(touched), touched, batch.stamp)

    def register(self, session: Session, batch: Prepared) -> int:
        """Once the batch and its recompute have committed: its legacy external ids registered, and the
        run's cursor moved past it. Returns how many were registered."""
        session.execute(text("SET LOCAL jit = off"))
        sources = sorted(self.channels)
        return int(session.execute(text(REGISTER), {
            "after": batch.after, "last": batch.last, "run": self.run_id, "stamp": now(), "sources": sources,
            "channels": [self.channels[s] for s in sources],
        }).scalar_one())  # fmt: skip

    def _attributes(self, session: Session, ids: list[int], added: dict[int, Replay | None], stamp: datetime
                    ) -> int:  # fmt: skip
        """Lock the customers `ids` and set the attributes replay gives them; returns how many changed.

        A customer whose replay so far is known (self.replays) and whose row still has what it gave
        takes the batch's leads of it (`added`) on top; any other is recomputed from all its leads the
        backfill has reached. Both give what replaying all those leads oldest first gives."""
        if not ids:
            return 0
        raw = cast(psycopg.Connection[Any], session.connection().connection.dbapi_connection)
        with raw.cursor() as cursor:
            cursor.execute(LOCK_TOUCHED, {"ids": _int_array(ids)})
            locked = cursor.fetchall()
        changed: list[tuple[int, tuple[Any, ...], tuple[Any, ...]]] = []  # (id, wanted, current)
        known: list[tuple[int, tuple[Any, ...], Key | None, Key | None]] = []
        full: dict[int, tuple[Any, ...]] = {}
        before_leadhub: set[int] = set()  # made by the guide's SQL: their first change keeps a before-image
        for cid, origin, full_name, city, created_at in locked:
            current = (full_name, city, created_at)
            if origin is None:
                before_leadhub.add(cid)
            replay, state = added.get(cid), self.replays.get(cid)
            if replay is None or state is None or origin == "intake" or state[0] != fingerprint(current):
                full[cid] = (origin, *current)
                continue
            mine = Replay(created_at, full_name, state[1], city, state[2])
            mine.merge(replay)
            wanted = mine.values()
            known.append((cid, wanted, mine.name_key, mine.city_key))
            if wanted != current:
                changed.append((cid, wanted, current))
        if full:
            changed.extend(self._replayed(session, full))
        if changed:
            changed.sort(key=lambda item: item[0])
            ids = [cid for cid, _, _ in changed]
            if before_leadhub.intersection(ids):
                session.execute(text(bulk.ATTRIBUTES_LOG), {"run": self.run_id, "ids": ids})
            done = session.execute(text(UPDATE_ATTRIBUTES), {
                "ids": ids, "fn": [w[0] for _, w, _ in changed], "ci": [w[1] for _, w, _ in changed],
                "ca": [w[2] for _, w, _ in changed], "ofn": [o[0] for _, _, o in changed],
                "oci": [o[1] for _, _, o in changed], "oca": [o[2] for _, _, o in changed], "stamp": stamp,
            }).rowcount  # type: ignore[attr-defined]  # fmt: skip
            if done != len(changed):
                raise ConcurrentChange("a customer changed while its attributes were recomputed")
        for cid, wanted, name_key, city_key in known:
            self.replays.put(cid, wanted, name_key, city_key)
        return len(changed)

    def _replayed(self, session: Session, customers: dict[int, tuple[Any, ...]]
                  ) -> list[tuple[int, tuple[Any, ...], tuple[Any, ...]]]:  # fmt: skip
        """Customers (id: origin and current attributes) recomputed from every lead of theirs the backfill
        has reached; returns those whose attributes change, and remembers each one's replay."""
        leads: dict[int, list[tuple[Any, ...]]] = {}
        raw = cast(psycopg.Connection[Any], session.connection().connection.dbapi_connection)
        with raw.cursor() as cursor:
            cursor.execute(TOUCHED, {"ids": _int_array(sorted(customers))})
            found = cursor.fetchall()
        for cid, lead_id, enq, name, location in found:
            leads.setdefault(cid, []).append((enq, lead_id, name, location))
        changed = []
        for cid, own in leads.items():
            own.sort(key=lambda lead: (lead[0], lead[1]))
            first_at = own[0][0]
            named = next(((lead, n) for lead in own if (n := self.name(lead[2]))), None)
            placed = next(((lead, c) for lead in own if (c := self.city(lead[3]))), None)
            origin, full_name, city, created_at = customers[cid]
            wanted = wanted_attributes(origin, full_name, city, created_at, named and named[1], placed and placed[1],
                                       first_at)  # fmt: skip
            values = (full_name, city, created_at) if wanted is None else (
                wanted["full_name"], wanted["city"], wanted["created_at"])  # fmt: skip
            if wanted is not None:
                changed.append((cid, values, (full_name, city, created_at)))
            if origin != "intake":
                self.replays.put(cid, values, named and (named[0][0], named[0][1]),
                                 placed and (placed[0][0], placed[0][1]))  # fmt: skip
        return changed


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


_NULL = "\\N"
_SPECIAL = re.compile(r"[\\\t\n\r]")


def _int_array(ids: list[int]) -> str:
    """A bigint[] literal: one string for the driver to send, not a value to adapt per element."""
    return "{" + ",".join(map(str, ids)) + "}"


def _text(value: str | None) -> str:
    """A text value in COPY's text format."""
    if value is None:
        return _NULL
    return value.translate(_ESCAPES) if _SPECIAL.search(value) else value


def wanted_attributes(origin: str | None, full_name: str | None, city: str | None, created_at: Any,
                      staged_name: str | None, staged_city: str | None, first_at: Any) -> dict[str, Any] | None:  # fmt: skip
    """The values replay would give a customer, or None when it already has them.

    A customer live intake or a person shaped since the switch (origin "intake") is only filled in;
    one the backfill or the guide's SQL made is recomputed from its leads."""
    if origin == "intake":
        wanted = {
            "full_name": full_name if clean_name(full_name) else staged_name or full_name,
            "city": city if clean_text(city) else staged_city or city,
            "created_at": created_at,
        }
    else:
        wanted = {"full_name": staged_name, "city": staged_city, "created_at": first_at}
    if (full_name, city, created_at) == (wanted["full_name"], wanted["city"], wanted["created_at"]):
        return None
    return wanted


def run_leads_phase(engine: Engine, phase: LeadsPhase, *, after: int, batch_size: int | None, target_s: float,
                    on_batch: Callable[[int, float, dict[str, Any]], None]) -> None:  # fmt: skip
    """Keyset batches from `after` to the end, each through the four steps of the module docstring.

    `on_batch(rows, seconds, stats)` is called once a batch's registration has committed, in batch
    order, with the longest of its transactions. With no batch size, batches are sized so that the
    slowest step's transaction takes about `target_s` (WRITERS batches may be written at once; a
    deadlock retries the step). A given size writes one batch at a time, so customer ids follow the
    order of the leads, as the --emit-sql script's do. When any step fails, no later step starts."""
    size, workers = batch_size or FIRST_BATCH, 1 if batch_size else WRITERS
    # The reader thread's Python (canonicalising the next batch) holds the GIL for whole switch
    # intervals while the writer waits to send its next statement; a shorter interval hands it over
    # sooner (2% at 200,000 leads). Process-wide, so it is put back when the phase ends.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_S)
    try:
        _run(engine, phase, after=after, batch_size=batch_size, size=size, workers=workers, target_s=target_s,
             on_batch=on_batch)  # fmt: skip
    finally:
        sys.setswitchinterval(interval)


class _Stopped(Exception):
    """A step that did not start because an earlier one failed."""


def _run(engine: Engine, phase: LeadsPhase, *, after: int, batch_size: int | None, size: int, workers: int,
         target_s: float, on_batch: Callable[[int, float, dict[str, Any]], None]) -> None:  # fmt: skip
    Written = tuple[tuple[dict[str, Any], dict[int, Replay | None]], float]
    failed = threading.Event()  # once any step fails, no step starts: nothing commits past the failure
    first: list[BaseException] = []  # what failed first: the error the run raises

    def step(work: Callable[[Session], T]) -> tuple[T, float]:
        if failed.is_set():
            raise _Stopped("an earlier step of the backfill failed")
        try:
            return with_retries(engine, work)
        except BaseException as error:
            if not failed.is_set():
                first.append(error)
                failed.set()
            raise

    def create(batch: Prepared) -> tuple[Linked, float]:
        return step(lambda session: phase.create(session, batch))

    def write(batch: Prepared, creation: Future[tuple[Linked, float]]) -> Written:
        linked, _ = creation.result()
        return step(lambda session: phase.apply(session, batch, linked))

    def recompute(batch: Prepared, touched: dict[int, Replay | None]) -> tuple[int, float]:
        return step(lambda session: phase.recompute(session, batch, touched))

    def register(batch: Prepared, recomputed: Future[tuple[int, float]], previous: Future[Any] | None) -> Any:
        # Batches are written, recomputed, then registered, in key order: when this one's registration
        # commits, every lead up to its end is done, so its end is the run's cursor. Not after a step
        # that failed: the cursor would pass leads left unfinished.
        if previous is not None:
            previous.result()
        attributes, recompute_s = recomputed.result()
        registered, register_s = step(lambda session: phase.register(session, batch))
        return {"customers_attributes_set": attributes, "external_ids_registered": registered}, max(
            recompute_s, register_s
        )

    # Sizing: the slowest step's seconds per lead, the write's as soon as it is known and the
    # follow-ups' when they are (a batch with nothing to write still has its customers recomputed).
    slowest = {"write": 0.0, "follow": 0.0}

    def resize(kind: str, seconds: float, rows: int) -> None:
        nonlocal size
        if batch_size is not None:
            return
        slowest[kind] = max(seconds, 1e-3) / rows
        per_row = max(slowest.values())
        size = int(min(MAX_BATCH, max(MIN_BATCH, size / 2, min(size * 2, target_s / per_row))))

    # Each step has its own thread and connection: batch n+1's customers are made while batch n's leads
    # are written, batch n-1's customers recomputed and batch n-2's ids registered.
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-read") as reader,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-create") as creator,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill-write") as writers,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-recompute") as recomputer,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-register") as registrar,
    ):
        ahead: Future[Prepared | None] | None = reader.submit(phase.prepare, after, size)
        flight: deque[tuple[Prepared, Future[Written]]] = deque()
        filing: deque[tuple[Prepared, dict[str, Any], float, Future[Any]]] = deque()

        def report(*, wait: bool, keep: int = 0) -> None:
            while len(filing) > keep and (wait or filing[0][3].done()):
                done, stats, seconds, future = filing.popleft()
                more, follow_s = future.result()
                on_batch(
                    done.rows,
                    max(seconds, follow_s),
                    {**stats, **{k: stats.get(k, 0) + v for k, v in more.items()}},
                )
                resize("follow", follow_s, done.rows)

        try:
            # One batch more than there are writers: its customers are made while the writers write.
            while ahead is not None or flight:
                batch = ahead.result() if ahead is not None and len(flight) <= workers else None
                if batch is not None:
                    ahead = reader.submit(phase.prepare, batch.last, size)
                    flight.append((batch, writers.submit(write, batch, creator.submit(create, batch))))
                    continue
                if ahead is not None and len(flight) <= workers:
                    ahead = None  # the table is read to its end
                    continue
                done, future = flight.popleft()
                (stats, touched), seconds = future.result()
                done.data, done.leads = "", []  # written: the follow-ups need only its bounds
                previous = filing[-1][3] if filing else None
                recomputed = recomputer.submit(recompute, done, touched)
                filing.append((done, stats, seconds, registrar.submit(register, done, recomputed, previous)))
                report(wait=False)
                # When the follow-ups fall behind (the repair path recomputes most customers), the writes
                # wait: the cursor stays near the writes, and memory flat.
                report(wait=True, keep=FOLLOW_UPS_BEHIND)
                resize("write", seconds, done.rows)
            report(wait=True)
        except BaseException as error:
            failed.set()
            for executor in (reader, creator, writers, recomputer, registrar):
                executor.shutdown(wait=False, cancel_futures=True)
            if isinstance(error, _Stopped) and first:
                raise first[0] from None
            raise
