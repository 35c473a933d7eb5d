"""leadhub's backfill beside the set-based anchor, on the same legacy fixture, in one run.

Builds ../shared/legacy/fixture.sql with --n leads once as a template database, copies it, runs
../shared/bench/setbased_backfill.sql on one copy (the leanest set-based backfill PostgreSQL can do,
without canonicalisation, batching or undo) and `leadhub db upgrade` + `leadhub backfill-customers`
on the other; then the repair path on a copy of a guide-backfilled fixture. Prints both times, the
ratio, rows/s, the longest backfill transaction and leadhub's peak RSS; then times `--undo` on each of
leadhub's copies (no anchor: the guide's SQL cannot be undone).

Also the anchor's own SQL on a third copy that `leadhub db upgrade` has adopted (untimed): the same
one insert and one update, paying for leadhub's schema as the upgrade leaves it for the backfill (three
indexes on leads_master where the legacy table has two: the staff-list ones are left to the backfill,
leadhub.migration.set_aside; the customer foreign key; leadhub's customers table). It shows how much
of the gap is the schema's. leadhub's own backfill also drops the foreign keys its writes check and
builds every set-aside index and key at its end, inside its timed run. A CHECKPOINT comes before each timed run, so none
of them pays for the previous one's dirty pages.

    .venv/bin/python benchmarks/backfill.py [--n 1000000] [--batch-size N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy.engine import make_url

from _common import ADMIN_URL, SHARED, libpq, machine

LEADHUB = str(Path(sys.executable).parent / "leadhub")


def _admin(sql: str) -> None:
    with psycopg.connect(libpq(ADMIN_URL), autocommit=True) as conn:
        conn.execute(sql)


def _url(name: str) -> str:
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _psql(url: str, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *args, "-d", libpq(url)], check=True,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - started


def _leadhub(url: str, *args: str) -> tuple[float, str]:
    env = {**os.environ, "LEADHUB_DATABASE_URL": url}
    started = time.perf_counter()
    done = subprocess.run([LEADHUB, *args], env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - started, done.stdout


def _template(n: int, guide: bool) -> str:
    name = f"lh_bf_tpl_{n}_{int(guide)}_{uuid.uuid4().hex[:6]}"
    _admin(f'CREATE DATABASE "{name}"')
    _psql(
        _url(name),
        "-v",
        f"n={n}",
        "-v",
        f"guide_backfill={int(guide)}",
        "-f",
        str(SHARED / "legacy" / "fixture.sql"),
    )
    return name


def _copy(template: str) -> str:
    name = f"lh_bf_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def _checkpoint() -> None:
    _admin("CHECKPOINT")


def _leadhub_run(url: str, batch: int | None) -> dict[str, Any]:
    _checkpoint()
    upgrade_s, _ = _leadhub(url, "db", "upgrade")
    sizing = ["--batch-size", str(batch)] if batch else []  # default: batches sized by time
    _checkpoint()
    backfill_s, out = _leadhub(url, "backfill-customers", "--json", *sizing)
    report = json.loads(out)
    _checkpoint()
    undo_s, undone = _leadhub(url, "backfill-customers", "--undo", "--json")
    return {"upgrade_s": round(upgrade_s, 2), "backfill_s": round(backfill_s, 2),
            "total_s": round(upgrade_s + backfill_s, 2), "longest_transaction_s": round(report["longest_transaction_s"], 3),
            "set_aside": report["set_aside"], "put_back": report["put_back"], "put_back_s": round(report["put_back_s"], 2),
            "leads": report["leads_scanned"], "customers_created": report["customers_created"],
            "customers_merged": report["customers_merged"], "customers_detached": report["customers_detached"],
            "undo_s": round(undo_s, 2), "undo_longest_transaction_s": round(json.loads(undone)["longest_transaction_s"], 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    made: list[str] = []
    try:
        started = time.perf_counter()
        plain = _template(args.n, guide=False)
        made.append(plain)
        build_s = time.perf_counter() - started
        anchor_db, schema_db, leadhub_db = _copy(plain), _copy(plain), _copy(plain)
        made += [anchor_db, schema_db, leadhub_db]
        anchor_sql = str(SHARED / "bench" / "setbased_backfill.sql")
        _checkpoint()
        anchor_s = _psql(_url(anchor_db), "-f", anchor_sql)
        _leadhub(_url(schema_db), "db", "upgrade")
        _checkpoint()
        schema_s = _psql(_url(schema_db), "-f", anchor_sql)
        _admin(f'DROP DATABASE "{schema_db}" WITH (FORCE)')
        ours = _leadhub_run(_url(leadhub_db), args.batch_size)
        guided = _template(args.n, guide=True)
        made.append(guided)
        repair_db = _copy(guided)
        made.append(repair_db)
        repair = _leadhub_run(_url(repair_db), args.batch_size)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        for name in made:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    result = {
        "machine": machine(), "n": args.n, "batch_size": args.batch_size, "fixture_build_s": round(build_s, 1),
        "anchor_setbased_s": round(anchor_s, 2), "anchor_on_leadhub_schema_s": round(schema_s, 2),
        "ratio_anchor_on_leadhub_schema": round(schema_s / anchor_s, 2), "leadhub": ours, "ratio_total": round(ours["total_s"] / anchor_s, 2),
        "ratio_backfill_only": round(ours["backfill_s"] / anchor_s, 2),
        "ratio_backfill_to_schema": round(ours["backfill_s"] / schema_s, 2),
        "leadhub_rows_per_s": round(args.n / ours["backfill_s"]), "repair": repair,
        "peak_rss_mb_any_child": round(peak_mb, 1),
    }  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return
    print(result["machine"])
    print(f"fixture: {args.n:,} leads (built in {build_s:.0f} s)")
    print(f"anchor  setbased_backfill.sql:               {anchor_s:8.2f} s")
    print(f"the anchor's SQL on leadhub's schema:        {schema_s:8.2f} s "
          f"({result['ratio_anchor_on_leadhub_schema']} of the anchor: the schema's share)")  # fmt: skip
    print(f"leadhub db upgrade + backfill-customers:     {ours['total_s']:8.2f} s "
          f"(upgrade {ours['upgrade_s']} s, backfill {ours['backfill_s']} s, {result['leadhub_rows_per_s']:,} leads/s)")  # fmt: skip
    print(f"ratio leadhub/anchor: {result['ratio_total']} (backfill alone {result['ratio_backfill_only']}; "
          f"backfill alone against the anchor's SQL on leadhub's schema {result['ratio_backfill_to_schema']})")  # fmt: skip
    print(f"set aside while the leads were written: {len(ours['set_aside'])}; put back at the end: "
          f"{len(ours['put_back'])} in {ours['put_back_s']} s (part of the backfill's time)")  # fmt: skip
    print(f"longest backfill transaction: {ours['longest_transaction_s']} s; then --undo: {ours['undo_s']} s "
          f"(longest transaction {ours['undo_longest_transaction_s']} s)")  # fmt: skip
    print(f"repair path (guide-backfilled copy): {repair['total_s']} s, merged {repair['customers_merged']:,}, "
          f"detached {repair['customers_detached']:,}, longest transaction {repair['longest_transaction_s']} s; "
          f"then --undo: {repair['undo_s']} s (longest transaction {repair['undo_longest_transaction_s']} s)")  # fmt: skip
    print(f"peak RSS of the largest child process (psql or leadhub): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
