"""`sync meta` against the fake Graph server: paging, checkpoints that never skip a failed lead,
reconciliation, rate limits, expired tokens, and one lead for a webhook plus a sync."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.config import Settings
from leadhub.db.models import Lead, LeadLog, SyncCheckpoint
from leadhub.integrations.meta.client import GraphClient
from leadhub.integrations.meta.fake_server import FakeGraph
from leadhub.integrations.meta.sync import run_sync
from tests.integrations.meta.conftest import APP_SECRET, FORM, TOKEN, wait_for_fetches


def _leads(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return int(s.execute(select(func.count()).select_from(Lead)).scalar_one())


def _add(graph: FakeGraph, n: int, *, start: int = 0, ago: int = 3600) -> list[dict[str, object]]:
    now = int(time.time())
    return [
        graph.add_lead(FORM, phone=f"+9198{i + start:08d}", created_time=now - ago + i, variant=i)
        for i in range(n)
    ]


def test_sync_follows_paging_over_three_pages(
    engine: Engine,
    settings: Settings,
    graph: FakeGraph,
    configured: sessionmaker[Session],
    client: GraphClient,
) -> None:
    _add(graph, 7)
    settings = settings.model_copy(update={"meta_page_size": 3})
    report = run_sync(engine, settings, client=client)
    (form,) = report.forms
    assert form.pages == 3 and form.fetched == 7 and form.outcomes == {"created": 7} and form.error is None
    assert _leads(configured) == 7
    with configured() as s:
        lead = s.execute(select(Lead).limit(1)).scalar_one()
        assert {"form_id", "ad_id", "campaign_id", "platform"} <= set(lead.raw_payload["meta"])
    # The next run starts from the checkpoint: nothing new, nothing written.
    again = run_sync(engine, settings, client=client, reconcile=False).forms[0]
    assert again.fetched == 0 and _leads(configured) == 7


def test_a_lead_that_fails_mid_sync_is_retried_next_run_not_skipped(
    engine: Engine,
    settings: Settings,
    graph: FakeGraph,
    configured: sessionmaker[Session],
    client: GraphClient,
) -> None:
    leads = _add(graph, 5)
    graph.faults.broken_leads.add(str(leads[1]["id"]))  # unreadable this time
    first = run_sync(engine, settings, client=client).forms[0]
    assert first.failed_leads == 1 and first.error_kind == "lead_failed" and _leads(configured) == 4
    with configured() as s:
        cp = s.execute(select(SyncCheckpoint).where(SyncCheckpoint.scope == FORM)).scalar_one()
        assert cp.cursor is not None and int(cp.cursor.timestamp()) <= int(time.time()) - 3600 + 1
    _add(graph, 2, start=100, ago=10)  # newer leads arrive meanwhile
    graph.faults.broken_leads.clear()
    second = run_sync(engine, settings, client=client, reconcile=False).forms[0]
    assert second.failed_leads == 0 and second.error is None
    assert _leads(configured) == 7


def test_graph_failing_on_a_later_page_keeps_the_checkpoint(
    engine: Engine,
    settings: Settings,
    graph: FakeGraph,
    configured: sessionmaker[Session],
    client: GraphClient,
) -> None:
    _add(graph, 9)
    settings = settings.model_copy(update={"meta_page_size": 3})
    graph.faults.fail_after_pages = 1
    first = run_sync(engine, settings, client=client).forms[0]
    assert first.error_kind == "unavailable" and first.cursor is None and _leads(configured) == 3
    graph.faults.fail_after_pages = None
    second = run_sync(engine, settings, client=client).forms[0]
    assert second.error is None and _leads(configured) == 9


def test_rate_limit_backs_off_and_resumes(
    engine: Engine, settings: Settings, graph: FakeGraph, configured: sessionmaker[Session]
) -> None:
    from leadhub.integrations.meta.sync import make_client

    _add(graph, 4)
    graph.faults.rate_limit_next, graph.faults.regain_minutes = 2, 0.001  # ~0.06 s each
    graph.faults.transient_next = 1
    with make_client(settings) as client:
        form = run_sync(engine, settings, client=client).forms[0]
    assert form.error is None and _leads(configured) == 4


def test_rate_limit_longer_than_the_budget_ends_the_run_and_says_so(
    engine: Engine,
    settings: Settings,
    graph: FakeGraph,
    configured: sessionmaker[Session],
    client: GraphClient,
) -> None:
    _add(graph, 2)
    graph.faults.rate_limit_next, graph.faults.regain_minutes = 1, 30
    form = run_sync(engine, settings, client=client).forms[0]
    assert form.error_kind == "rate_limited" and "80005" in (form.error or "")
    assert run_sync(engine, settings, client=client).forms[0].error is None and _leads(configured) == 2


def test_expired_token_stops_the_page_with_an_actionable_status(
    engine: Engine,
    settings: Settings,
    graph: FakeGraph,
    configured: sessionmaker[Session],
    client: GraphClient,
) -> None:
    _add(graph, 3)
    graph.faults.expired_tokens.add(TOKEN)
    form = run_sync(engine, settings, client=client).forms[0]
    assert form.error_kind == "token_expired" and "leadhub channels meta set-token" in (form.error or "")
    assert graph.calls.count(f"/v23.0/{FORM}/leads") == 1
    again = run_sync(engine, settings, client=client).forms[0]  # stopped: no more calls until a new token
    assert again.error_kind == "token_expired" and graph.calls.count(f"/v23.0/{FORM}/leads") == 1
    assert _leads(configured) == 0


def test_webhook_plus_sync_of_the_same_lead_is_one_lead(
    engine: Engine,
    settings: Settings,
    graph: FakeGraph,
    configured: sessionmaker[Session],
    client: GraphClient,
    api: TestClient,
) -> None:
    (lead,) = _add(graph, 1)
    graph.faults.down = True  # the webhook is recorded, its fetch fails: pending
    body = graph.webhook_body([lead])
    assert (
        api.post("/webhooks/meta", content=body, headers=graph.signature(body, APP_SECRET)).status_code == 200
    )
    wait_for_fetches(api)
    graph.faults.down = False
    report = run_sync(engine, settings, client=client)
    assert _leads(configured) == 1
    # ... and once more the other way round: sync first, then the webhook arrives.
    (second,) = _add(graph, 1, start=50, ago=5)
    run_sync(engine, settings, client=client, reconcile=True)
    body = graph.webhook_body([second])
    assert (
        api.post("/webhooks/meta", content=body, headers=graph.signature(body, APP_SECRET)).json()["new"] == 0
    )
    assert _leads(configured) == 2 and report.pending.processed + report.forms[0].fetched >= 1


def test_repeat_enquiry_from_a_known_customer_attaches_to_the_open_lead(
    engine: Engine,
    settings: Settings,
    graph: FakeGraph,
    configured: sessionmaker[Session],
    client: GraphClient,
) -> None:
    now = int(time.time())
    graph.add_lead(FORM, phone="+919811112222", created_time=now - 100)
    graph.add_lead(FORM, phone="09811112222", created_time=now - 50, platform="ig")
    form = run_sync(engine, settings, client=client).forms[0]
    assert form.outcomes == {"created": 1, "attached": 1}
    with configured() as s:
        assert s.execute(select(func.count()).select_from(LeadLog)).scalar_one() == 1


def test_a_second_poller_is_refused(
    engine: Engine, settings: Settings, configured: sessionmaker[Session], client: GraphClient
) -> None:
    import pytest

    from leadhub.integrations.locks import poller_lock
    from leadhub.integrations.meta.sync import PollerBusy

    with poller_lock(engine, "meta") as held:
        assert held
        with pytest.raises(PollerBusy):
            run_sync(engine, settings, client=client)
