"""`sync meta` end to end on PostgreSQL: 10,000 leads over 5 forms from the fake Graph server.

Anchor 1 (same run, same fake server, same client, same pages): read every page of every form and do
nothing with the leads, i.e. the ceiling the HTTP side allows on this machine. leadhub: `run_sync`
(paging, mapping, the shared intake: inbox row, customer by canonical phone, open-lead rule, lead,
checkpoint) into a fresh PostgreSQL database. The fake server runs in its own process; the sync runs
in a fresh process so its peak RSS is its own. Anchor 2: the shared ingest() alone on a sample of the
same leads, already mapped (what the intake path itself costs per lead here).

    .venv/bin/python benchmarks/meta_sync.py [--leads 10000] [--forms 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, scratch_database
from leadhub.config import Settings
from leadhub.db import migrate
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.integrations.meta import service
from leadhub.integrations.meta.fake_server import FakeGraph
from leadhub.integrations.meta.sync import make_client, run_sync

PAGE, TOKEN = "100000000000001", "bench-page-token"


def _serve(leads: int, forms: int, ready: Any, stop: Any) -> None:
    graph = FakeGraph()
    graph.add_page(PAGE, TOKEN)
    now = int(time.time())
    for f in range(forms):
        graph.add_form(f"3000000000000{f:02d}", PAGE)
    for i in range(leads):
        # Some callers enquire twice (the open-lead rule attaches them); phones in the field variants.
        n = i if i % 10 else i // 2
        graph.add_lead(f"3000000000000{i % forms:02d}", phone=f"+9198{n:08d}", created_time=now - 3600 + i // 10,
                       variant=i)  # fmt: skip
    ready.put(graph.start())
    stop.wait()
    graph.stop()


def _settings(url: str, graph_url: str) -> Settings:
    return Settings(database_url=url, meta_graph_url=graph_url, meta_retry_base_delay=0.1)


def _anchor(graph_url: str, forms: int) -> tuple[int, float]:
    settings = _settings("sqlite://", graph_url)
    started = time.perf_counter()
    count = 0
    with make_client(settings) as client:
        for f in range(forms):
            for page in client.form_leads(f"3000000000000{f:02d}", TOKEN, since=0, limit=100):
                count += len(page)
    return count, time.perf_counter() - started


def _leadhub(url: str, graph_url: str, out: Any) -> None:
    settings = _settings(url, graph_url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with make_client(settings) as client, session_scope(factory) as session:
        service.save_page(session, page_id=PAGE, token=TOKEN, name="Bench Motors")
        service.discover_forms(session, client, page_id=PAGE)
    started = time.perf_counter()
    report = run_sync(engine, settings)
    elapsed = time.perf_counter() - started
    outcomes: dict[str, int] = {}
    for form in report.forms:
        for key, value in form.outcomes.items():
            outcomes[key] = outcomes.get(key, 0) + value
    engine.dispose()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    out.put({"fetched": sum(f.fetched for f in report.forms), "outcomes": outcomes, "seconds": elapsed,
             "peak_rss_mib": peak_kib / 1024, "errors": [f.error for f in report.forms if f.error]})  # fmt: skip


def _ceiling(url: str, graph_url: str, sample: int, out: Any) -> None:
    """Second anchor: the shared `ingest()` alone on already-mapped leads (no HTTP, no paging, one
    thread), on a sample into its own database: what the intake path costs per lead on this machine."""
    from leadhub.integrations.meta.mapper import FormRules, map_lead
    from leadhub.leads.intake import ingest

    settings = _settings(url, graph_url)
    leads: list[dict[str, Any]] = []
    with make_client(settings) as client:
        for page in client.form_leads("300000000000000", TOKEN, since=0, limit=100):
            leads.extend(page)
    intakes = [map_lead(lead, FormRules(form_id="300000000000000")) for lead in leads[:sample]]
    engine = make_engine(url)
    factory = make_session_factory(engine)
    started = time.perf_counter()
    for i in range(0, len(intakes), 100):  # one transaction per 100, as the sync commits per page
        with session_scope(factory) as session:
            for intake in intakes[i : i + 100]:
                ingest(session, intake)
    out.put(len(intakes) / (time.perf_counter() - started))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--forms", type=int, default=5)
    parser.add_argument("--ceiling-sample", type=int, default=1000, help="leads for the ingest()-only anchor")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    server = ctx.Process(target=_serve, args=(args.leads, args.forms, ready, stop))
    server.start()
    try:
        graph_url = ready.get(timeout=120)
        anchor_count, anchor_seconds = _anchor(graph_url, args.forms)
        with scratch_database("lh_bench_meta") as url:
            migrate.upgrade(url)
            worker = ctx.Process(target=_leadhub, args=(url, graph_url, out))
            worker.start()
            result = out.get(timeout=600)
            worker.join()
        with scratch_database("lh_bench_meta_ceiling") as url:
            migrate.upgrade(url)
            ceiling = ctx.Process(target=_ceiling, args=(url, graph_url, args.ceiling_sample, out))
            ceiling.start()
            ingest_rate = float(out.get(timeout=600))
            ceiling.join()
    finally:
        stop.set()
        server.join()
    anchor_rate = anchor_count / anchor_seconds
    leadhub_rate = result["fetched"] / result["seconds"]
    summary = {
        "machine": machine(),
        "leads": args.leads,
        "forms": args.forms,
        "anchor_leads_read": anchor_count,
        "anchor_leads_per_s": round(anchor_rate, 1),
        "leadhub_leads_per_s": round(leadhub_rate, 1),
        "ingest_only_leads_per_s": round(ingest_rate, 1),
        "ingest_only_sample": args.ceiling_sample,
        "leadhub_seconds": round(result["seconds"], 2),
        "leadhub_outcomes": result["outcomes"],
        "leadhub_peak_rss_mib": round(result["peak_rss_mib"], 1),
        "errors": result["errors"],
        "ratio": round(leadhub_rate / anchor_rate, 3),
        "ratio_to_ingest_only": round(leadhub_rate / ingest_rate, 3),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(summary["machine"])
    print(f"anchor  (read all pages, no ingestion): {anchor_count} leads, {anchor_rate:10.1f} leads/s")
    print(f"leadhub (sync meta end to end, PostgreSQL): {result['fetched']} leads, {leadhub_rate:10.1f} leads/s, "
          f"peak RSS {result['peak_rss_mib']:.1f} MiB, {result['outcomes']}")  # fmt: skip
    print(
        f"anchor 2 (shared ingest() alone, {args.ceiling_sample} mapped leads, 1 thread): {ingest_rate:10.1f} leads/s"
    )
    if result["errors"]:
        print(f"errors: {result['errors']}")
    print(
        f"ratio leadhub/anchor: {leadhub_rate / anchor_rate:.3f}; leadhub/ingest-only: {leadhub_rate / ingest_rate:.3f}"
    )


if __name__ == "__main__":
    main()
