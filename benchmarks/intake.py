"""Intakes/s through leadhub's service layer on PostgreSQL, beside the raw-SQL anchor in the same run.

Anchor: ../shared/bench/intake.pgb under pgbench (the least work PostgreSQL must do per enquiry: one
find-or-create customer + insert lead statement, no inbox, no Python). leadhub: `ingest()` (inbox row,
canonical phone, customer find-or-create with a row lock, open-lead check, lead insert, outcome) from
worker processes, each with its own connection pool, on the same kind of random callers.
Both run on identical starting data: a legacy fixture of --leads leads (../shared/legacy/fixture.sql)
with the set-based customer backfill applied (../shared/bench/setbased_backfill.sql), then adopted by
`leadhub db upgrade`, as the anchor's header asks.

    .venv/bin/python benchmarks/intake.py [--seconds 15] [--clients 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED, libpq, machine, pgbench_intake, scratch_database
from leadhub.db import migrate
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.leads.intake import Channel, Intake, ingest

FORMATS = ["+91{m}", "{m}", "91{m}", "0{m}", "+91 {a} {b}"]


def prepare(url: str, leads: int) -> None:
    for script, extra in (("legacy/fixture.sql", ["-v", f"n={leads}", "-v", "guide_backfill=0"]),
                          ("bench/setbased_backfill.sql", [])):  # fmt: skip
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *extra, "-f", str(SHARED / script), libpq(url)],
                       check=True, capture_output=True)  # fmt: skip
    migrate.upgrade(url)


def run_anchor(url: str, seconds: int, clients: int) -> float:
    return pgbench_intake(url, seconds, clients)


def _worker(url: str, seconds: float, threads: int, seed: int, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    engine = make_engine(url, pool_size=threads, max_overflow=0)
    factory = make_session_factory(engine)
    deadline = time.perf_counter() + seconds

    def loop(t: int) -> int:
        rng = random.Random(seed * 1000 + t)
        done = 0
        while time.perf_counter() < deadline:
            m = str(rng.randint(6_000_000_000, 9_999_999_999))
            phone = rng.choice(FORMATS).format(m=m, a=m[:5], b=m[5:])
            with session_scope(factory) as session:
                ingest(session, Intake(source=Channel.KNOWLARITY, phone=phone, name="Caller",
                                       external_id=f"{seed}-{t}-{done}", raw_payload={"uuid": "x"}))  # fmt: skip
            done += 1
        return done

    with ThreadPoolExecutor(threads) as pool:
        queue.put(sum(pool.map(loop, range(threads))))
    engine.dispose()


def run_leadhub(url: str, seconds: int, clients: int, processes: int = 2) -> float:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    per = max(1, clients // processes)
    procs = [ctx.Process(target=_worker, args=(url, seconds, per, i, queue)) for i in range(processes)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    total = sum(int(queue.get()) for _ in procs)
    for p in procs:
        p.join()
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with scratch_database("lh_bench_anchor") as anchor_db, scratch_database("lh_bench_intake") as lh_db:
        for url in (anchor_db, lh_db):
            prepare(url, args.leads)
        anchor = run_anchor(anchor_db, args.seconds, args.clients)
        leadhub = run_leadhub(lh_db, args.seconds, args.clients)
    result = {
        "machine": machine(),
        "clients": args.clients,
        "seconds": args.seconds,
        "anchor_intakes_per_s": round(anchor, 1),
        "leadhub_intakes_per_s": round(leadhub, 1),
        "ratio": round(leadhub / anchor, 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(result["machine"])
    print(f"anchor  (pgbench, intake.pgb, {args.clients} clients): {anchor:10.1f} intakes/s")
    print(f"leadhub (ingest(), {args.clients} threads in 2 processes): {leadhub:10.1f} intakes/s")
    print(f"ratio leadhub/anchor: {leadhub / anchor:.3f}")


if __name__ == "__main__":
    main()
