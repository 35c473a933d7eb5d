"""`leadhub backfill-customers --emit-sql FILE`: the backfill as one reviewable SQL script (PostgreSQL).

leadhub reads the distinct legacy strings (phones, names, cities, provider times), computes what
it would make of each in Python (leadhub.phones, leadhub.customers.names, provider_time) and writes
them into the script as data, in multi-row INSERT ... VALUES chunks (COPY FROM stdin would not run
in the Supabase SQL editor). The steps are DO blocks that COMMIT after each batch and run the
statement texts of leadhub.migration.bulk, passed the parameters as arrays. The command's leads
phase on PostgreSQL has its own statements (leadhub.migration.pg_leads); tests/migration/
test_emit_sql.py holds the two to the same end state, row for row. The script logs what it replaces in the same tables, so
`leadhub backfill-customers --undo` undoes it, and it is idempotent like the command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text

from leadhub.customers.names import clean_name, clean_text
from leadhub.db.migrate import current_revision, head_revision
from leadhub.errors import LeadhubError
from leadhub.migration import bulk
from leadhub.migration.backfill import EXTERNAL_ID_SOURCES
from leadhub.migration.common import canonical, provider_time

# What live intake stores (leadhub.phones output); a string of this shape written after the script
# was emitted is taken as its own canonical form.
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
CHUNK = 1000  # rows per INSERT ... VALUES statement
_PARAM = re.compile(r"(?<![:\w]):([a-z_]+)\b")


@dataclass
class EmitReport:
    path: str = ""
    phones: int = 0
    texts: int = 0
    times: int = 0
    revision: str = ""


def plpgsql_execute(statement: str, **values: str) -> str:
    """`EXECUTE '<statement>' USING ...`: the command's statement text, its :name parameters bound to
    PL/pgSQL expressions in order of first use."""
    order: list[str] = []
    for name in _PARAM.findall(statement):
        if name not in order:
            order.append(name)
    missing = set(order) - set(values)
    if missing:
        raise ValueError(f"no value for {sorted(missing)} in {statement[:60]}")
    body = _PARAM.sub(lambda m: f"${order.index(m.group(1)) + 1}", statement)
    return f"EXECUTE {_literal(body)} USING {', '.join(values[n] for n in order)};"


def _literal(value: str | None) -> str:
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


def _values(table: str, columns: str, rows: Sequence[tuple[str | None, ...]]) -> Iterable[str]:
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        body = ",\n".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in chunk)
        yield f"INSERT INTO {table} ({columns}) VALUES\n{body}\nON CONFLICT DO NOTHING;\n"


def emit_sql(engine: Engine, path: Path, *, region: str = "IN", batch_size: int = 5000) -> EmitReport:
    """Write the backfill script for the database behind `engine` to `path`."""
    if engine.dialect.name != "postgresql":
        raise LeadhubError(
            "--emit-sql writes a PostgreSQL script (psql or the Supabase SQL editor); this database is "
            f"{engine.dialect.name}: run `leadhub backfill-customers` without --emit-sql instead"
        )
    head = head_revision()
    revision = current_revision(engine)
    if revision != head:
        raise LeadhubError(
            f"the database is at revision {revision or 'none'}, not {head}: run `leadhub db upgrade` first "
            "so the script is written for (and checks for) the adopted schema"
        )
    with engine.connect() as conn:
        waiting = conn.execute(text("SELECT kind, name FROM backfill_set_aside ORDER BY kind, name")).all()
    if any(kind == "foreign_key" for kind, _ in waiting):
        raise LeadhubError(
            "a `leadhub backfill-customers` run stopped with foreign keys set aside "
            f"({', '.join(name for _, name in waiting)}): run it again to finish it, or undo it with --undo, "
            "before writing a script (its merge deletes customers, which those keys guard)"
        )
    if waiting:
        raise LeadhubError(
            f"`leadhub db upgrade` left the indexes {', '.join(name for _, name in waiting)} to the backfill "
            "command; the script does not build them: run `leadhub db upgrade --build-all` first (it builds "
            "them CONCURRENTLY, blocking no writer)"
        )
    with engine.connect() as conn:
        raw_phones = conn.execute(text(
            "SELECT phone_number_normalized FROM customers WHERE phone_number_normalized IS NOT NULL UNION "
            "SELECT phone_number_legacy FROM leads_master WHERE phone_number_legacy IS NOT NULL UNION "
            "SELECT phone_number_normalized FROM leads_master WHERE phone_number_normalized IS NOT NULL"
        )).scalars().all()  # fmt: skip
        names = conn.execute(text(
            "SELECT full_name FROM leads_master WHERE full_name IS NOT NULL UNION "
            "SELECT full_name FROM customers WHERE full_name IS NOT NULL")).scalars().all()  # fmt: skip
        cities = conn.execute(text(
            "SELECT raw_customer_location FROM leads_master WHERE raw_customer_location IS NOT NULL UNION "
            "SELECT city FROM customers WHERE city IS NOT NULL")).scalars().all()  # fmt: skip
        raw_times = conn.execute(text(
            "SELECT raw_payload->>'start_time' FROM leads_master WHERE enquired_at IS NULL UNION "
            "SELECT raw_payload->>'created_time' FROM leads_master WHERE enquired_at IS NULL")).scalars().all()  # fmt: skip
    phones = [(raw, *canonical(raw, region)) for raw in sorted(raw_phones)]
    texts = [("name", raw, clean_name(raw)) for raw in sorted(names)]
    texts += [("city", raw, clean_text(raw)) for raw in sorted(cities)]
    times = []
    for raw in sorted(t for t in raw_times if t is not None):
        at = provider_time({"start_time": raw})
        if at is not None:
            times.append((raw, at.astimezone(UTC).isoformat()))

    with path.open("w", encoding="utf-8") as out:
        out.write(_header(head, region, len(phones)))
        out.write(_SETUP)
        for chunk in _values("backfill_script_phones", "raw, e164, reason", phones):
            out.write(chunk)
        for chunk in _values("backfill_script_texts", "kind, raw, clean", texts):
            out.write(chunk)
        for chunk in _values("backfill_script_times", "raw, at", times):
            out.write(chunk)
        out.write(
            "ANALYZE backfill_script_phones;\nANALYZE backfill_script_texts;\nANALYZE backfill_script_times;\n\n"
        )
        out.write(_steps(batch_size))
    return EmitReport(path=str(path), revision=head, phones=len(phones), texts=len(texts), times=len(times))


def _header(revision: str, region: str, phones: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""-- leadhub backfill-customers, as a script (written by `leadhub backfill-customers --emit-sql`, {stamp}).
-- Schema revision {revision}; phone region {region}; {phones} distinct phone strings mapped below.
-- Run with:  psql -X -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -f THIS_FILE
-- or paste it into the Supabase SQL editor. Every step commits per batch and is idempotent: a run
-- that stops part-way is finished by running the script again. `leadhub backfill-customers --undo`
-- undoes it. Review: the data section maps each legacy string to what leadhub makes of it; the DO
-- blocks after it are the same statements `leadhub backfill-customers` runs.

DO $check$
BEGIN
  IF to_regclass('alembic_version') IS NULL
     OR NOT EXISTS (SELECT 1 FROM alembic_version WHERE version_num = {_literal(revision)}) THEN
    RAISE EXCEPTION 'leadhub: this script is for schema revision {revision}; run `leadhub db upgrade` '
      '(or re-emit the script for this database) first';
  END IF;
  IF EXISTS (SELECT 1 FROM backfill_set_aside WHERE kind = 'foreign_key') THEN
    RAISE EXCEPTION 'leadhub: a `leadhub backfill-customers` run stopped with foreign keys set aside; run it '
      'again to finish it (or --undo it) first';
  END IF;
  IF EXISTS (SELECT 1 FROM backfill_runs WHERE status = 'undoing') THEN
    RAISE EXCEPTION 'leadhub: an undo of the backfill was interrupted; run `leadhub backfill-customers --undo` '
      'again to finish it first';
  END IF;
END $check$;

"""


_SETUP = """SET client_min_messages = warning;  -- no "already exists, skipping" notice per batch

-- Mapping tables: temporary (gone with the session, whatever happens), and they outlive each batch's COMMIT.
CREATE TEMP TABLE IF NOT EXISTS backfill_script_phones (raw text PRIMARY KEY, e164 text, reason text);
CREATE TEMP TABLE IF NOT EXISTS backfill_script_texts (kind text, raw text, clean text, PRIMARY KEY (kind, raw));
CREATE TEMP TABLE IF NOT EXISTS backfill_script_times (raw text PRIMARY KEY, at timestamptz);

"""


# COMMIT per batch works where each statement is its own transaction (psql). Where the whole script is
# one query string (the Supabase SQL editor), the statements share one implicit transaction, in which a
# DO block may not COMMIT: a transaction-local mark set just before each DO block is still visible
# inside it only in that case, and the block then leaves committing to the end of the script.
_MARK = "DO $mark$ BEGIN PERFORM set_config('leadhub.one_transaction', 'yes', true); END $mark$;\n"


def _run_id() -> str:
    return (
        "SELECT id INTO v_run FROM backfill_runs WHERE status = 'running' AND stats->>'script' = 'true' "
        "ORDER BY id DESC LIMIT 1;"
    )


def _steps(batch: int) -> str:
    sources = " ".join(f"WHEN {_literal(k)} THEN {_literal(v)}" for k, v in EXTERNAL_ID_SOURCES.items())
    merge = "\n    ".join(
        plpgsql_execute(s, run="v_run", old="v_old", new="v_new", rk="v_rk", ph="v_ph", keys="v_keys",
                        logged="v_old || v_rk")
        for s in bulk.merge_statements()
    )  # fmt: skip
    detach = "\n    ".join(
        plpgsql_execute(s, run="v_run", old="v_old", new="v_new", ids="v_ids")
        for s in bulk.detach_statements()
    )
    e = plpgsql_execute
    e164_like = _literal(E164_PATTERN)
    return f"""-- A string missing from the mapping was written after the script was: live intake writes E.164
-- (taken as is); anything else means the script is stale, so stop before writing.
DO $fresh$
DECLARE v_missing bigint;
BEGIN
  SELECT count(*) INTO v_missing FROM (
    SELECT phone_number_normalized AS raw FROM customers UNION
    SELECT phone_number_legacy FROM leads_master UNION
    SELECT phone_number_normalized FROM leads_master) s
  WHERE raw IS NOT NULL AND raw !~ {e164_like}
    AND NOT EXISTS (SELECT 1 FROM backfill_script_phones m WHERE m.raw = s.raw);
  IF v_missing > 0 THEN
    RAISE EXCEPTION 'leadhub: % phone strings in the database are not in this script''s mapping; '
      'write the script again with `leadhub backfill-customers --emit-sql`', v_missing;
  END IF;
END $fresh$;

-- The run: backfill_log rows point at it, as they do for the command.
INSERT INTO backfill_runs (status, phase, cursor, stats, started_at)
SELECT 'running', 'keys', NULL, '{{"script": true}}', now()
WHERE NOT EXISTS (SELECT 1 FROM backfill_runs WHERE status = 'running' AND stats->>'script' = 'true');

-- 1. keys: the canonical key of each customer stored under a non-canonical phone.
INSERT INTO backfill_customer_keys (customer_id, e164, reason)
SELECT c.id, m.e164, m.reason FROM customers c JOIN backfill_script_phones m ON m.raw = c.phone_number_normalized
WHERE m.e164 IS DISTINCT FROM c.phone_number_normalized
  AND EXISTS (SELECT 1 FROM backfill_runs WHERE status = 'running' AND stats->>'script' = 'true' AND phase = 'keys')
ON CONFLICT DO NOTHING;
UPDATE backfill_runs SET phase = 'merge' WHERE status = 'running' AND stats->>'script' = 'true' AND phase = 'keys';
ANALYZE backfill_customer_keys;

-- 2. merge: one customer per canonical phone, the oldest survives; then invalid ones are detached.
{_MARK}DO $merge$
DECLARE
  v_commit boolean := coalesce(current_setting('leadhub.one_transaction', true), '') <> 'yes';
  v_run bigint; v_keys text[]; v_old bigint[]; v_new bigint[]; v_rk bigint[]; v_ph text[]; v_ids bigint[];
BEGIN
  {_run_id()}
  IF (SELECT phase FROM backfill_runs WHERE id = v_run) IS DISTINCT FROM 'merge' THEN RETURN; END IF;
  LOOP
    v_keys := ARRAY(SELECT e164 FROM backfill_customer_keys WHERE e164 IS NOT NULL
                    GROUP BY e164 ORDER BY e164 LIMIT {max(50, batch // 10)});
    EXIT WHEN cardinality(v_keys) = 0;
    CREATE TEMP TABLE IF NOT EXISTS backfill_script_members (e164 text, id bigint, holds boolean, rn bigint);
    TRUNCATE backfill_script_members;
    INSERT INTO backfill_script_members
    SELECT p.e164, c.id, c.phone_number_normalized IS NOT DISTINCT FROM p.e164,
           row_number() OVER (PARTITION BY p.e164 ORDER BY c.created_at IS NULL, c.created_at, c.id)
    FROM (SELECT e164, customer_id AS id FROM backfill_customer_keys WHERE e164 = ANY(v_keys)
          UNION SELECT phone_number_normalized, id FROM customers WHERE phone_number_normalized = ANY(v_keys)) p
    JOIN customers c ON c.id = p.id;
    PERFORM 1 FROM customers WHERE id IN (SELECT id FROM backfill_script_members) ORDER BY id FOR UPDATE;
    SELECT coalesce(array_agg(m.id ORDER BY m.id), '{{}}'), coalesce(array_agg(s.id ORDER BY m.id), '{{}}')
      INTO v_old, v_new
      FROM backfill_script_members m JOIN backfill_script_members s ON s.e164 = m.e164 AND s.rn = 1 WHERE m.rn > 1;
    SELECT coalesce(array_agg(id ORDER BY id), '{{}}'), coalesce(array_agg(e164 ORDER BY id), '{{}}')
      INTO v_rk, v_ph FROM backfill_script_members WHERE rn = 1 AND NOT holds;
    {merge}
    IF v_commit THEN COMMIT; END IF;
  END LOOP;
  LOOP
    v_ids := ARRAY(SELECT customer_id FROM backfill_customer_keys WHERE e164 IS NULL
                   ORDER BY customer_id LIMIT {max(50, batch // 10)});
    EXIT WHEN cardinality(v_ids) = 0;
    v_old := ARRAY(SELECT id FROM customers WHERE id = ANY(v_ids) ORDER BY id FOR UPDATE);
    v_new := array_fill(NULL::bigint, ARRAY[cardinality(v_old)]);
    {detach}
    IF v_commit THEN COMMIT; END IF;
  END LOOP;
  UPDATE backfill_runs SET phase = 'leads', cursor = NULL WHERE id = v_run;
  IF v_commit THEN COMMIT; END IF;
END $merge$;

-- 3. leads: canonicalise (legacy string kept), link, enquiry time, legacy external ids, attribute staging.
{_MARK}DO $leads$
DECLARE
  v_commit boolean := coalesce(current_setting('leadhub.one_transaction', true), '') <> 'yes';
  v_run bigint; v_after bigint; v_last bigint; v_stamp timestamptz;
BEGIN
  {_run_id()}
  IF (SELECT phase FROM backfill_runs WHERE id = v_run) IS DISTINCT FROM 'leads' THEN RETURN; END IF;
  SELECT coalesce(cursor::bigint, 0) INTO v_after FROM backfill_runs WHERE id = v_run;
  CREATE TEMP TABLE IF NOT EXISTS backfill_script_batch (
    id bigint, old_phone text, old_cid bigint, old_enq timestamptz, old_raw text, raw text, e164 text,
    cid bigint, enq timestamptz, name text, city text, source text, external_id text, received timestamptz,
    okey text);
  LOOP
    v_stamp := clock_timestamp();
    TRUNCATE backfill_script_batch;
    INSERT INTO backfill_script_batch
    SELECT l.id, l.phone_number_normalized, l.customer_id, l.enquired_at, l.phone_number_legacy, src.raw,
           CASE WHEN m.raw IS NOT NULL THEN m.e164 WHEN src.raw ~ {e164_like} THEN src.raw END, NULL,
           coalesce(l.enquired_at, t1.at, t2.at, l.created_at, v_stamp), n.clean, ci.clean,
           CASE s.source_type {sources} END, l.external_lead_id, coalesce(l.created_at, v_stamp), NULL
    FROM (SELECT * FROM leads_master WHERE id > v_after ORDER BY id LIMIT {batch}) l
    -- the string read (common.read_phone): the legacy string kept, unless the phone is no longer
    -- what the backfill wrote for it (the old app edited it since): then the phone as it is now
    LEFT JOIN backfill_script_phones ml ON ml.raw = l.phone_number_legacy
    CROSS JOIN LATERAL (SELECT CASE
      WHEN l.phone_number_legacy IS NULL THEN l.phone_number_normalized
      WHEN l.phone_number_normalized IS NOT DISTINCT FROM coalesce(
             CASE WHEN ml.raw IS NOT NULL THEN ml.e164
                  WHEN l.phone_number_legacy ~ {e164_like} THEN l.phone_number_legacy END,
             l.phone_number_legacy) THEN l.phone_number_legacy
      ELSE l.phone_number_normalized END AS raw) src
    LEFT JOIN backfill_script_phones m ON m.raw = src.raw
    LEFT JOIN backfill_script_times t1 ON t1.raw = l.raw_payload->>'start_time'
    LEFT JOIN backfill_script_times t2 ON t2.raw = l.raw_payload->>'created_time'
    LEFT JOIN backfill_script_texts n ON n.kind = 'name' AND n.raw = l.full_name
    LEFT JOIN backfill_script_texts ci ON ci.kind = 'city' AND ci.raw = l.raw_customer_location
    LEFT JOIN sources s ON s.id = l.source_id;
    SELECT max(id) INTO v_last FROM backfill_script_batch;
    EXIT WHEN v_last IS NULL;
    {
        e(
            bulk.INSERT_CUSTOMERS,
            phones="ARRAY(SELECT DISTINCT e164 FROM backfill_script_batch WHERE e164 IS NOT NULL ORDER BY 1)",
            stamp="v_stamp",
        )
    }
    UPDATE backfill_script_batch b SET cid = c.id FROM customers c WHERE c.phone_number_normalized = b.e164;
    UPDATE backfill_script_batch SET okey = to_char(enq AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
      || '|' || lpad(id::text, 20, '0');
    CREATE TEMP TABLE IF NOT EXISTS backfill_script_changes AS SELECT * FROM backfill_script_batch WITH NO DATA;
    TRUNCATE backfill_script_changes;
    INSERT INTO backfill_script_changes SELECT * FROM backfill_script_batch
      WHERE (old_phone, old_cid, old_enq) IS DISTINCT FROM (coalesce(e164, raw), cid, enq)
         OR (old_raw IS NOT NULL AND old_raw IS DISTINCT FROM raw);
    {
        e(
            bulk.INSERT_LEAD_LOGS,
            ids="ARRAY(SELECT id FROM backfill_script_changes WHERE old_cid IS NOT NULL OR raw IS NULL ORDER BY id)",
            runs="ARRAY(SELECT v_run FROM backfill_script_changes WHERE old_cid IS NOT NULL OR raw IS NULL ORDER BY id)",
            old="ARRAY(SELECT CASE WHEN old_raw IS NULL THEN old_cid END FROM backfill_script_changes "
            "WHERE old_cid IS NOT NULL OR raw IS NULL ORDER BY id)",
        )
    }
    {
        e(
            bulk.UPDATE_LEADS,
            ids="ARRAY(SELECT id FROM backfill_script_changes ORDER BY id)",
            old="ARRAY(SELECT old_phone FROM backfill_script_changes ORDER BY id)",
            phone="ARRAY(SELECT coalesce(e164, raw) FROM backfill_script_changes ORDER BY id)",
            legacy="ARRAY(SELECT raw FROM backfill_script_changes ORDER BY id)",
            cid="ARRAY(SELECT cid FROM backfill_script_changes ORDER BY id)",
            enq="ARRAY(SELECT enq FROM backfill_script_changes ORDER BY id)",
        )
    }
    {
        e(
            bulk.INSERT_EVENTS,
            s="ARRAY(SELECT source FROM backfill_script_batch WHERE cid IS NOT NULL AND source IS NOT NULL AND external_id <> '' ORDER BY id)",
            e="ARRAY(SELECT external_id FROM backfill_script_batch WHERE cid IS NOT NULL AND source IS NOT NULL AND external_id <> '' ORDER BY id)",
            l="ARRAY(SELECT id FROM backfill_script_batch WHERE cid IS NOT NULL AND source IS NOT NULL AND external_id <> '' ORDER BY id)",
            c="ARRAY(SELECT cid FROM backfill_script_batch WHERE cid IS NOT NULL AND source IS NOT NULL AND external_id <> '' ORDER BY id)",
            r="ARRAY(SELECT received FROM backfill_script_batch WHERE cid IS NOT NULL AND source IS NOT NULL AND external_id <> '' ORDER BY id)",
            stamp="v_stamp",
        )
    }
    CREATE TEMP TABLE IF NOT EXISTS backfill_script_attrs (
      cid bigint, fk text, fa timestamptz, fn text, nk text, ci text, ck text);
    TRUNCATE backfill_script_attrs;
    INSERT INTO backfill_script_attrs
    SELECT cid, min(okey), (array_agg(enq ORDER BY okey))[1],
           (array_agg(name ORDER BY okey) FILTER (WHERE name IS NOT NULL))[1], min(okey) FILTER (WHERE name IS NOT NULL),
           (array_agg(city ORDER BY okey) FILTER (WHERE city IS NOT NULL))[1], min(okey) FILTER (WHERE city IS NOT NULL)
    FROM backfill_script_batch WHERE cid IS NOT NULL GROUP BY cid;
    {
        e(
            bulk.MERGE_ATTRIBUTES.strip(),
            cid="ARRAY(SELECT cid FROM backfill_script_attrs ORDER BY cid)",
            fk="ARRAY(SELECT fk FROM backfill_script_attrs ORDER BY cid)",
            fa="ARRAY(SELECT fa FROM backfill_script_attrs ORDER BY cid)",
            fn="ARRAY(SELECT fn FROM backfill_script_attrs ORDER BY cid)",
            nk="ARRAY(SELECT nk FROM backfill_script_attrs ORDER BY cid)",
            ci="ARRAY(SELECT ci FROM backfill_script_attrs ORDER BY cid)",
            ck="ARRAY(SELECT ck FROM backfill_script_attrs ORDER BY cid)",
        )
    }
    UPDATE backfill_runs SET phase = 'leads', cursor = v_last::text WHERE id = v_run;
    v_after := v_last;
    IF v_commit THEN COMMIT; END IF;
  END LOOP;
  UPDATE backfill_runs SET phase = 'attributes', cursor = NULL WHERE id = v_run;
  IF v_commit THEN COMMIT; END IF;
END $leads$;

-- 4. attributes: the values replaying the leads oldest first would give (a person's edits kept).
{_MARK}DO $attributes$
DECLARE
  v_commit boolean := coalesce(current_setting('leadhub.one_transaction', true), '') <> 'yes';
  v_run bigint; v_after bigint; v_last bigint; v_ids bigint[];
BEGIN
  {_run_id()}
  IF (SELECT phase FROM backfill_runs WHERE id = v_run) IS DISTINCT FROM 'attributes' THEN RETURN; END IF;
  SELECT coalesce(cursor::bigint, 0) INTO v_after FROM backfill_runs WHERE id = v_run;
  CREATE TEMP TABLE IF NOT EXISTS backfill_script_wanted (id bigint, fn text, ci text, ca timestamptz);
  LOOP
    v_ids := ARRAY(SELECT customer_id FROM backfill_customer_attrs WHERE customer_id > v_after
                   ORDER BY customer_id LIMIT {batch});
    EXIT WHEN cardinality(v_ids) = 0;
    v_last := v_ids[cardinality(v_ids)];
    PERFORM 1 FROM customers WHERE id = ANY(v_ids) ORDER BY id FOR UPDATE;
    TRUNCATE backfill_script_wanted;
    INSERT INTO backfill_script_wanted
    SELECT w.id, w.fn, w.ci, w.ca FROM (
      SELECT c.id,
             CASE WHEN c.origin = 'intake' THEN CASE WHEN n.clean IS NOT NULL THEN c.full_name
                                                     ELSE coalesce(s.full_name, c.full_name) END
                  ELSE s.full_name END AS fn,
             CASE WHEN c.origin = 'intake' THEN CASE WHEN ci.clean IS NOT NULL THEN c.city
                                                     ELSE coalesce(s.city, c.city) END
                  ELSE s.city END AS ci,
             CASE WHEN c.origin = 'intake' THEN c.created_at ELSE s.first_at END AS ca,
             c.full_name AS old_fn, c.city AS old_ci, c.created_at AS old_ca
      FROM backfill_customer_attrs s JOIN customers c ON c.id = s.customer_id
      LEFT JOIN backfill_script_texts n ON n.kind = 'name' AND n.raw = c.full_name
      LEFT JOIN backfill_script_texts ci ON ci.kind = 'city' AND ci.raw = c.city
      WHERE s.customer_id = ANY(v_ids)) w
    WHERE (w.fn, w.ci, w.ca) IS DISTINCT FROM (w.old_fn, w.old_ci, w.old_ca);
    {e(bulk.ATTRIBUTES_LOG, run="v_run", ids="ARRAY(SELECT id FROM backfill_script_wanted ORDER BY id)")}
    {
        e(
            bulk.UPDATE_ATTRIBUTES,
            ids="ARRAY(SELECT id FROM backfill_script_wanted ORDER BY id)",
            fn="ARRAY(SELECT fn FROM backfill_script_wanted ORDER BY id)",
            ci="ARRAY(SELECT ci FROM backfill_script_wanted ORDER BY id)",
            ca="ARRAY(SELECT ca FROM backfill_script_wanted ORDER BY id)",
            stamp="clock_timestamp()",
        )
    }
    UPDATE backfill_runs SET cursor = v_last::text WHERE id = v_run;
    v_after := v_last;
    IF v_commit THEN COMMIT; END IF;
  END LOOP;
  DELETE FROM backfill_customer_attrs;
  UPDATE backfill_runs SET phase = 'done', status = 'finished', cursor = NULL, finished_at = now() WHERE id = v_run;
  IF v_commit THEN COMMIT; END IF;
END $attributes$;

DROP TABLE IF EXISTS backfill_script_phones;
DROP TABLE IF EXISTS backfill_script_texts;
DROP TABLE IF EXISTS backfill_script_times;
"""
