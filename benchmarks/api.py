"""The staff API at scale: CRE tab queues, lead lists and the customer journey at 1,000,000 leads.

`leadhub serve` (one worker, production settings) on a PostgreSQL database generated in SQL: 6
branches, 60 CREs, 1,000,000 leads over ~700,000 customers in the legacy status mix, two activity rows
per lead. A client on loopback asks each query `--requests` times, one at a time (p50 and p99 of a
page of 50). Anchor, in the same run on the same database: the same pages as hand-written SQL through
psycopg, with no HTTP, no auth and no ORM. Target (issue 6): p99 under 50 ms for a page of 50.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, libpq, machine, scratch_database
from leadhub.auth import users
from leadhub.db import migrate
from leadhub.db.models import Branch
from leadhub.db.session import make_engine, make_session_factory, session_scope

PASSWORD = secrets.token_urlsafe(16)
IST_MIDNIGHT = "(date_trunc('day', now() AT TIME ZONE 'Asia/Kolkata') AT TIME ZONE 'Asia/Kolkata')"

GENERATE = """
INSERT INTO users (username, role, status) SELECT 'cre' || g, 'CRE', true FROM generate_series(1, 60) g;
INSERT INTO sources (display_name, source_type) VALUES ('Website', 'web_form'), ('Knowlarity', 'knowlarity_call');
INSERT INTO customers (phone_number_normalized, full_name, origin, created_at, updated_at)
  SELECT '+9190' || lpad(g::text, 8, '0'), 'Customer ' || g, 'backfill', now(), now()
  FROM generate_series(1, %(customers)s) g;
INSERT INTO leads_master (full_name, phone_number_normalized, source_id, status, "IS_LOST", is_qualified,
                          total_attempts, branch_id, customer_id, assigned_to, assigned_at, next_followup_at,
                          enquired_at, created_at, updated_at)
  SELECT 'Customer ' || c, '+9190' || lpad(c::text, 8, '0'), 1 + (g %% 2),
         (ARRAY['New','New','New','New','Working','Working','Pending','Pending','Qualified','Lost'])[1 + g %% 10],
         CASE WHEN g %% 10 = 9 THEN true END, g %% 10 = 8, g %% 5,
         (SELECT min(id) FROM branches) + g %% 6, c,
         (SELECT min(user_id) FROM users WHERE role = 'CRE' AND username LIKE 'cre%%') + (g / 10) %% 60, now(),
         CASE WHEN g %% 10 IN (6, 7) THEN now() + ((g %% 240) - 120) * interval '1 hour' END,
         now() - (g %% 400) * interval '1 day', now(), now()
  FROM (SELECT g, 1 + (g::bigint * 7919) %% %(customers)s AS c FROM generate_series(1, %(leads)s) g) s;
INSERT INTO leads_logs (lead_id, old_status, new_status, remarks, metadata, created_at)
  SELECT id, 'New', status, 'generated', '{"action": "generated"}', enquired_at FROM leads_master;
INSERT INTO leads_logs (lead_id, old_status, new_status, remarks, metadata, created_at)
  SELECT id, status, status, 'call back', '{"action": "call_attempt"}', enquired_at + interval '1 hour'
  FROM leads_master;
"""

# Walk-ins: every 20th lead is one, its visit in the inbox at its enquiry time (~125 a day over 400
# days, a quarter of them at the receptionist's branch). RMs: every qualified lead of the first branch
# is handed to RM "rm1" (legacy leads_qualification.rm_id = the RM's branch_members id).
RECEPTION_AND_RMS = """
WITH walk_in AS (INSERT INTO sources (display_name, source_type) VALUES ('Walk-in', 'walk_in') RETURNING id),
     moved AS (UPDATE leads_master SET source_id = (SELECT id FROM walk_in) WHERE id %% 20 = 0 RETURNING id, enquired_at)
INSERT INTO intake_events (source, external_id, status, outcome, lead_id, received_at, processed_at)
  SELECT 'walk_in', 'bench-' || id, 'processed', 'created', id, enquired_at, enquired_at FROM moved;
INSERT INTO leads_qualification (lead_id, branch_id, rm_id)
  SELECT id, branch_id, (SELECT id FROM branch_members WHERE user_id = %(rm)s AND role = 'RM')
  FROM leads_master WHERE is_qualified AND branch_id = (SELECT min(id) FROM branches);
"""


def build(url: str, leads: int) -> dict[str, int]:
    migrate.upgrade(url)
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        branches = [Branch(name=f"Branch {i}") for i in range(6)]
        s.add_all(branches)
        s.flush()
        ids = {
            "admin": users.create_user(s, username="admin", role="Admin", password=PASSWORD).user_id,
            "branch": branches[0].id,
            "tl": users.create_user(
                s,
                username="tl",
                role="CRE_TL",
                password=PASSWORD,
                branches=[users.BranchGrant(branch_id=branches[0].id)],
            ).user_id,
        }
        for name, role in (("desk", "Receptionist"), ("rm1", "RM"), ("rmtl", "RM_TL")):
            grants = [users.BranchGrant(branch_id=branches[0].id)]
            ids[name] = users.create_user(
                s, username=name, role=role, password=PASSWORD, branches=grants
            ).user_id
    engine.dispose()
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for statement in filter(str.strip, GENERATE.split(";\n")):
            conn.execute(statement, {"customers": leads * 7 // 10, "leads": leads})
        for statement in filter(str.strip, RECEPTION_AND_RMS.split(";\n")):
            conn.execute(statement, {"rm": ids["rm1"]})
        conn.execute("ANALYZE")
        # CRE "cre1" logs in too: give it the admin's password hash
        conn.execute(
            "UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE username = 'admin') "
            "WHERE username = 'cre1'"
        )
        ids["cre"] = conn.execute("SELECT user_id FROM users WHERE username = 'cre1'").fetchone()[0]  # type: ignore[index]
        ids["customers"] = leads * 7 // 10
        ids["rm_member"] = conn.execute(
            "SELECT id FROM branch_members WHERE user_id = %s AND role = 'RM'", (ids["rm1"],)
        ).fetchone()[0]  # type: ignore[index]
    return ids


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(n: int, call: Callable[[int], None]) -> tuple[float, float]:
    for i in range(5):
        call(i)  # warm-up: plans, caches
    samples = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    print(machine())
    with scratch_database("lh_bench_api") as url:
        started = time.perf_counter()
        ids = build(url, args.leads)
        print(f"built {args.leads:,} leads in {time.perf_counter() - started:.1f} s")
        env = {
            **os.environ,
            "LEADHUB_DATABASE_URL": url,
            "LEADHUB_SECRET_KEY": secrets.token_urlsafe(32),
            "LEADHUB_LOG_LEVEL": "warning",
        }
        port = 8000 + random.randrange(1000, 9000)
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "leadhub"), "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            results = measure(base, url, ids, args.requests)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{'query':44} {'anchor p50/p99 ms':>20} {'leadhub p50/p99 ms':>20} {'p99 ≤ 50 ms':>12}")
    for name, (anchor, mine) in results.items():
        ok = "yes" if mine[1] <= 50 else "NO"
        print(f"{name:44} {anchor[0]:9.2f} /{anchor[1]:8.2f} {mine[0]:9.2f} /{mine[1]:8.2f} {ok:>12}")


def measure(
    base: str, url: str, ids: dict[str, int], n: int
) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    client = httpx.Client(base_url=base, timeout=30)
    tokens = {}
    for who in ("cre1", "tl", "admin", "desk", "rm1", "rmtl"):
        answer = client.post("/api/auth/login", json={"username": who, "password": PASSWORD})
        answer.raise_for_status()
        tokens[who] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    rng = random.Random(7)
    customers = [rng.randrange(1, ids["customers"]) for _ in range(n + 5)]
    conn = psycopg.connect(libpq(url), autocommit=True)
    cre = ids["cre"]

    def api(who: str, path: str) -> Callable[[int], None]:
        def call(_: int) -> None:
            response = client.get(path, headers=tokens[who])
            response.raise_for_status()

        return call

    def sql(query: str, param: Callable[[int], object]) -> Callable[[int], None]:
        def call(i: int) -> None:
            conn.execute(query, (param(i),)).fetchall()

        return call

    def journey_api(i: int) -> None:
        client.get(f"/api/customers/{customers[i]}/journey", headers=tokens["admin"]).raise_for_status()

    journey_sql = (
        "SELECT l.*, (SELECT json_agg(g ORDER BY g.id) FROM leads_logs g WHERE g.lead_id = l.id) "
        "FROM leads_master l WHERE l.customer_id = %s ORDER BY l.id"
    )
    page = "ORDER BY id DESC LIMIT 51"
    cases = {
        "CRE tab fresh (queue)": (
            sql(
                f"SELECT * FROM leads_master WHERE assigned_to = %s AND lower(status) = 'new' "
                f'AND "IS_LOST" IS NOT TRUE AND is_qualified IS NOT TRUE {page}',
                lambda _: cre,
            ),
            api("cre1", "/api/queues/fresh?limit=50"),
        ),
        "CRE tab pending (queue)": (
            sql(
                f"SELECT * FROM leads_master WHERE assigned_to = %s AND lower(status) = 'pending' {page}",
                lambda _: cre,
            ),
            api("cre1", "/api/queues/pending?limit=50"),
        ),
        "CRE follow-ups today (queue)": (
            sql(
                f"SELECT * FROM leads_master WHERE assigned_to = %s AND next_followup_at >= date_trunc('day', now()) "
                f"AND next_followup_at < date_trunc('day', now()) + interval '1 day' {page}",
                lambda _: cre,
            ),
            api("cre1", "/api/queues/followups_today?limit=50"),
        ),
        "CRE my leads (GET /api/leads)": (
            sql(f"SELECT * FROM leads_master WHERE assigned_to = %s {page}", lambda _: cre),
            api("cre1", "/api/leads?limit=50"),
        ),
        "TL branch leads (GET /api/leads)": (
            sql(f"SELECT * FROM leads_master WHERE branch_id = %s {page}", lambda _: ids.get("branch", 1)),
            api("tl", "/api/leads?limit=50"),
        ),
        "receptionist's day (walkins_today)": (
            sql(
                "SELECT * FROM leads_master WHERE branch_id = %s AND id IN (SELECT lead_id FROM intake_events "
                "WHERE source = 'walk_in' AND received_at >= " + IST_MIDNIGHT + " "
                f"AND received_at < {IST_MIDNIGHT} + interval '1 day') {page}",
                lambda _: ids["branch"],
            ),
            api("desk", "/api/queues/walkins_today?limit=50"),
        ),
        "RM's leads (queue mine)": (
            sql(
                "SELECT * FROM leads_master l WHERE EXISTS (SELECT 1 FROM leads_qualification q "
                "WHERE q.lead_id = l.id AND q.rm_id = %s) ORDER BY l.id DESC LIMIT 51",
                lambda _: ids["rm_member"],
            ),
            api("rm1", "/api/queues/mine?limit=50"),
        ),
        "RM_TL's team (queue team)": (
            sql(
                "SELECT * FROM leads_master l WHERE assigned_to IS NOT NULL AND EXISTS (SELECT 1 FROM "
                "leads_qualification q WHERE q.lead_id = l.id AND q.rm_id = %s) ORDER BY l.id DESC LIMIT 51",
                lambda _: ids["rm_member"],
            ),
            api("rmtl", "/api/queues/team?limit=50"),
        ),
        "customer journey (admin)": (sql(journey_sql, lambda i: customers[i]), journey_api),
    }
    results = {}
    for name, (anchor, mine) in cases.items():
        results[name] = (timed(n, anchor), timed(n, mine))
    conn.close()
    client.close()
    return results


if __name__ == "__main__":
    main()
