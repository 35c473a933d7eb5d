"""The Meta webhook against the fake Graph server: handshake, signatures, batching, Graph outages."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.db.models import IntakeEvent, Lead
from leadhub.integrations.meta import service
from leadhub.integrations.meta.client import GraphClient
from leadhub.integrations.meta.fake_server import FakeGraph
from tests.integrations.meta.conftest import APP_SECRET, FORM, TOKEN, VERIFY, wait_for_fetches


def _count(factory: sessionmaker[Session], model: type) -> int:
    with factory() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}, 200),
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}, 403),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"}, 403),
        ({"hub.challenge": "1"}, 403),
    ],
)
def test_handshake(api: TestClient, params: dict[str, str], status: int) -> None:
    response = api.get("/webhooks/meta", params=params)
    assert response.status_code == status
    if status == 200:
        assert response.text == "1158201444" and response.headers["content-type"].startswith("text/plain")


def test_signed_batch_with_numeric_and_string_ids_becomes_leads(
    api: TestClient, graph: FakeGraph, configured: sessionmaker[Session]
) -> None:
    leads = [graph.add_lead(FORM, phone=f"+9190000000{i:02d}", variant=i) for i in range(4)]
    for ids_as_numbers, batch in ((False, leads[:2]), (True, leads[2:])):
        body = graph.webhook_body(batch, ids_as_numbers=ids_as_numbers)
        response = api.post("/webhooks/meta", content=body, headers=graph.signature(body, APP_SECRET))
        assert response.status_code == 200 and response.json() == {"received": 2, "new": 2}
    wait_for_fetches(api)
    with configured() as s:
        got = s.execute(select(Lead).order_by(Lead.id)).scalars().all()
        assert sorted(str(lead.external_lead_id) for lead in got) == sorted(lead["id"] for lead in leads)
        assert all(lead.raw_payload["meta"]["form_id"] == FORM for lead in got)
        assert all(lead.raw_payload["meta"]["platform"] == "fb" for lead in got)
    # A redelivery (Meta retries for 36 hours) writes nothing.
    body = graph.webhook_body(leads)
    assert (
        api.post("/webhooks/meta", content=body, headers=graph.signature(body, APP_SECRET)).json()["new"] == 0
    )


@pytest.mark.parametrize("case", ["wrong", "missing", "reserialised", "bare_hex"])
def test_bad_signature_is_401_and_nothing_is_stored(
    api: TestClient, graph: FakeGraph, configured: sessionmaker[Session], case: str
) -> None:
    lead = graph.add_lead(FORM, phone="+919000000021")
    body = graph.webhook_body([lead])
    headers = graph.signature(body, APP_SECRET)
    if case == "wrong":
        headers = graph.signature(body, "another-secret")
    elif case == "missing":
        headers = {"Content-Type": "application/json"}
    elif case == "reserialised":  # signed over one serialisation, sent as another
        body = json.dumps(json.loads(body), indent=2).encode()
    else:
        headers["X-Hub-Signature-256"] = headers["X-Hub-Signature-256"].removeprefix("sha256=")
    response = api.post("/webhooks/meta", content=body, headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
    assert _count(configured, IntakeEvent) == 0


def test_graph_down_answers_200_now_and_the_lead_arrives_after_recovery(
    api: TestClient, graph: FakeGraph, configured: sessionmaker[Session], client: GraphClient
) -> None:
    lead = graph.add_lead(FORM, phone="+919000000031")
    graph.faults.down = True
    body = graph.webhook_body([lead])
    started = time.perf_counter()
    response = api.post("/webhooks/meta", content=body, headers=graph.signature(body, APP_SECRET))
    assert response.status_code == 200 and time.perf_counter() - started < 1.0
    wait_for_fetches(api)
    with configured() as s:
        event = s.execute(select(IntakeEvent)).scalar_one()
        assert event.status == "pending" and "Graph fetch failed" in (event.reason or "")
    assert _count(configured, Lead) == 0

    graph.faults.down = False
    report = service.fetch_pending(configured, client)
    assert report.outcomes == {"created": 1}
    with configured() as s:
        assert s.execute(select(Lead.external_lead_id)).scalar_one() == lead["id"]
        assert s.execute(select(IntakeEvent.status)).scalar_one() == "processed"


def test_expired_token_keeps_the_event_pending_and_says_what_to_do(
    api: TestClient, graph: FakeGraph, configured: sessionmaker[Session], client: GraphClient
) -> None:
    lead = graph.add_lead(FORM, phone="+919000000041")
    graph.faults.expired_tokens.add(TOKEN)
    body = graph.webhook_body([lead])
    assert (
        api.post("/webhooks/meta", content=body, headers=graph.signature(body, APP_SECRET)).status_code == 200
    )
    wait_for_fetches(api)
    problems = api.get("/readyz").json()["checks"]["channels"]
    assert any("set-token 100000000000001" in p and "token_expired" in p for p in problems)
    status = api.get("/api/meta/status", headers={"X-API-Key": "k" * 32}).json()
    assert status["pages"][0]["token_ok"] is False and TOKEN not in json.dumps(status)
    assert _count(configured, Lead) == 0

    # The operator stores a new token: the waiting lead arrives, the problem clears.
    graph.tokens["100000000000001"] = "page-token-2"
    with configured() as s:
        service.save_page(s, page_id="100000000000001", token="page-token-2")
        s.commit()
    assert service.fetch_pending(configured, client).outcomes == {"created": 1}
    assert api.get("/readyz").json()["checks"]["channels"] == []
