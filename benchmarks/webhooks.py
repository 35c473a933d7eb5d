"""Knowlarity webhooks/s through `leadhub serve` on PostgreSQL, beside the raw-SQL anchor in the same run.

Anchor: ../shared/bench/intake.pgb under pgbench with the same number of connections (one find-or-create
customer + insert lead statement per enquiry: no HTTP, no Python, no inbox, no call record). leadhub:
`leadhub serve --workers N` with production settings, loaded by wrk on loopback (32 connections,
form-encoded pushes: unique call ids, 30% repeat callers, a quarter missed calls; benchmarks/webhooks.lua).
At the end: no duplicate customer, no duplicate call, one call per accepted push.

    .venv/bin/python benchmarks/webhooks.py [--seconds 15] [--connections 32] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, libpq, machine, pgbench_intake, scratch_database
from leadhub.db import migrate

LUA = Path(__file__).resolve().parent / "webhooks.lua"


def run_anchor(url: str, seconds: int, clients: int) -> float:
    with psycopg.connect(libpq(url), autocommit=True) as conn:  # intake.pgb inserts source_id 1
        conn.execute(
            "INSERT INTO sources (display_name, source_type) VALUES ('Knowlarity', 'knowlarity_call')"
        )
    return pgbench_intake(url, seconds, clients)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("leadhub serve exited early")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("leadhub serve did not become ready")


def _wrk(url: str, seconds: int, connections: int) -> dict[str, int]:
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s", "-s", str(LUA), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    result: dict[str, int] = json.loads(line[len("WRKJSON ") :])
    return result


def run_leadhub(url: str, seconds: int, connections: int, workers: int) -> dict[str, float]:
    key = secrets.token_urlsafe(24)
    port = _free_port()
    env = {
        **os.environ,
        "LEADHUB_DATABASE_URL": url,
        "LEADHUB_KNOWLARITY_WEBHOOK_KEY": key,
        "LEADHUB_LOG_LEVEL": "warning",
        "LEADHUB_DB_POOL_SIZE": str(max(4, connections // workers)),
        "LEADHUB_DB_MAX_OVERFLOW": "4",
    }
    leadhub = str(Path(sys.executable).parent / "leadhub")
    server = subprocess.Popen(
        [leadhub, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server)
        target = f"{base}/webhooks/knowlarity?key={key}"
        _wrk(target, 3, connections)  # warm-up: pools, imports, first source and number look-ups
        result = _wrk(target, seconds, connections)
    finally:
        server.terminate()
        server.wait(timeout=30)
    errors = sum(result[k] for k in ("status_errors", "connect", "read", "write", "timeout"))
    return {
        "requests": result["requests"],
        "rate": result["requests"] / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "errors": errors,
    }


def duplicate_check(url: str) -> dict[str, int]:
    queries = {
        "calls": "SELECT count(*) FROM calls",
        "knowlarity_events": "SELECT count(*) FROM intake_events WHERE source = 'knowlarity'",
        "customers": "SELECT count(*) FROM customers",
        "duplicate_customers": "SELECT count(*) FROM (SELECT 1 FROM customers "
        "GROUP BY phone_number_normalized HAVING count(*) > 1) d",
        "duplicate_calls": "SELECT count(*) FROM (SELECT 1 FROM calls GROUP BY call_uuid HAVING count(*) > 1) d",
        "calls_without_lead": "SELECT count(*) FROM calls WHERE lead_id IS NULL",
    }
    with psycopg.connect(libpq(url)) as conn:
        result = {}
        for name, sql in queries.items():
            row = conn.execute(sql).fetchone()
            result[name] = int(row[0]) if row else -1
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with scratch_database("lh_bench_anchor") as anchor_db, scratch_database("lh_bench_webhooks") as lh_db:
        for url in (anchor_db, lh_db):
            migrate.upgrade(url)
        anchor = run_anchor(anchor_db, args.seconds, args.connections)
        leadhub = run_leadhub(lh_db, args.seconds, args.connections, args.workers)
        check = duplicate_check(lh_db)
    # Other work on the machine skews both figures; the 1-minute load average says how busy it was.
    load = {"load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
    result = {
        "machine": machine(),
        "connections": args.connections,
        "workers": args.workers,
        "seconds": args.seconds,
        "anchor_intakes_per_s": round(anchor, 1),
        "leadhub_webhooks_per_s": round(leadhub["rate"], 1),
        "p50_ms": round(leadhub["p50_ms"], 1),
        "p99_ms": round(leadhub["p99_ms"], 1),
        "errors": int(leadhub["errors"]),
        "ratio": round(leadhub["rate"] / anchor, 3),
        **check,
        **load,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(result["machine"])
    print(f"anchor  (pgbench intake.pgb, {args.connections} clients):  {anchor:9.1f} intakes/s")
    print(f"leadhub (serve --workers {args.workers}, wrk {args.connections} connections): "
          f"{leadhub['rate']:9.1f} webhooks/s  p50 {leadhub['p50_ms']:.1f} ms  p99 {leadhub['p99_ms']:.1f} ms  "
          f"errors {int(leadhub['errors'])}")  # fmt: skip
    print(f"ratio leadhub/anchor: {result['ratio']:.3f}")
    print(f"check: {check}")
    print(f"machine load (1-min average) before {load['load_before']}, after {load['load_after']}")


if __name__ == "__main__":
    main()
