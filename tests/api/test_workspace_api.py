"""The staff's API: lead lists with scope, filters and cursors; assignment; customer search; journey."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.api.app import create_app
from leadhub.auth import users
from leadhub.config import Settings
from leadhub.db.models import Branch, Lead
from leadhub.db.session import session_scope
from leadhub.leads.intake import Channel, Intake, ingest

PASSWORD = "correct horse battery"


@dataclass
class World:
    client: TestClient
    tokens: dict[str, str]
    ids: dict[str, int]
    leads: dict[str, int]

    def get(self, who: str, url: str, **params: Any) -> Any:
        return self.client.get(url, params=params, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def post(self, who: str, url: str, body: dict[str, Any]) -> Any:
        return self.client.post(url, json=body, headers={"Authorization": f"Bearer {self.tokens[who]}"})


@pytest.fixture
def world(engine: Engine, factory: sessionmaker[Session]) -> Iterator[World]:
    settings = Settings(database_url=str(engine.url), admin_api_key=SecretStr("a" * 32),
                        secret_key=SecretStr("s" * 48))  # fmt: skip
    ids: dict[str, int] = {}
    leads: dict[str, int] = {}
    with session_scope(factory) as s:
        pune, nashik = Branch(name="Pune"), Branch(name="Nashik")
        s.add_all([pune, nashik])
        s.flush()
        ids |= {"pune": pune.id, "nashik": nashik.id}
        for name, role, branch in [("asha", "CRE", None), ("ravi", "CRE", None), ("tl", "CRE_TL", pune.id),
                                   ("desk", "Receptionist", nashik.id), ("boss", "Admin", None),
                                   ("dev", "Developer", None)]:  # fmt: skip
            grants = [users.BranchGrant(branch_id=branch)] if branch else []
            ids[name] = users.create_user(
                s, username=name, role=role, password=PASSWORD, branches=grants
            ).user_id
        for key, phone, source, branch in [("p1", "98111 00001", Channel.WEBSITE, pune.id),
                                           ("p2", "98111 00002", Channel.META, pune.id),
                                           ("p3", "98111 00003", Channel.STAFF, pune.id),
                                           ("n1", "98111 00004", Channel.WEBSITE, nashik.id),
                                           ("n2", "98111 00001", Channel.WALK_IN, nashik.id)]:  # fmt: skip
            result = ingest(s, Intake(source=source, phone=phone, branch_id=branch, name=f"Customer {key}"))
            assert result.lead_id is not None
            leads[key] = result.lead_id
        s.get(Lead, leads["p1"]).assigned_to = ids["asha"]  # type: ignore[union-attr]
        s.get(Lead, leads["n1"]).assigned_to = ids["asha"]  # type: ignore[union-attr]
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:
        tokens = {}
        for name in ("asha", "ravi", "tl", "desk", "boss", "dev"):
            answer = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
            assert answer.status_code == 200, answer.text
            tokens[name] = answer.json()["access_token"]
        yield World(client, tokens, ids, leads)


def _ids(response: Any) -> set[int]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


def test_each_role_lists_exactly_the_leads_it_may_see(world: World) -> None:
    w, leads = world, world.leads
    assert _ids(w.get("asha", "/api/leads")) == {leads["p1"], leads["n1"]}
    assert _ids(w.get("ravi", "/api/leads")) == set()
    assert _ids(w.get("tl", "/api/leads")) == {leads["p1"], leads["p2"], leads["p3"]}
    assert _ids(w.get("desk", "/api/leads")) == {leads["n2"]}  # her branch's walk-ins
    assert _ids(w.get("boss", "/api/leads")) == set(leads.values())


def test_cursor_pages_visit_every_lead_once_and_say_when_they_end(world: World) -> None:
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = world.get("boss", "/api/leads", **params).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and sorted(seen, reverse=True) == seen and set(seen) == set(world.leads.values())
    bad = world.get("boss", "/api/leads", cursor="not-ours")
    assert bad.status_code == 422 and "cursor" in bad.json()["error"]["message"]
    assert world.get("boss", "/api/leads", limit=0).status_code == 422


def test_filters_narrow_within_the_scope(world: World) -> None:
    w, leads = world, world.leads
    assert _ids(w.get("boss", "/api/leads", q="+91 98111-00001")) == {leads["p1"], leads["n2"]}
    assert _ids(w.get("boss", "/api/leads", unassigned=True)) == {leads["p2"], leads["p3"], leads["n2"]}
    assert _ids(w.get("boss", "/api/leads", branch_id=w.ids["nashik"])) == {leads["n1"], leads["n2"]}
    assert _ids(w.get("tl", "/api/leads", branch_id=w.ids["nashik"])) == set()  # outside the TL's scope
    assert _ids(w.get("boss", "/api/leads", q="customer p3")) == {leads["p3"]}


def test_a_team_lead_assigns_in_scope_and_nothing_outside_it(
    world: World, factory: sessionmaker[Session]
) -> None:
    w, leads = world, world.leads
    done = w.post(
        "tl", f"/api/leads/{leads['p2']}/assign", {"user_id": w.ids["ravi"], "why": "Hindi speaker"}
    )
    assert done.status_code == 200 and done.json() == {"assigned": [leads["p2"]], "unchanged": []}
    assert _ids(w.get("ravi", "/api/leads")) == {leads["p2"]}
    assert w.post("asha", f"/api/leads/{leads['p3']}/assign", {"user_id": w.ids["asha"]}).status_code == 403
    # one lead outside the TL's scope: 404 for the batch, and nothing changed
    bulk = w.post(
        "tl", "/api/leads/assign", {"lead_ids": [leads["p3"], leads["n1"]], "user_id": w.ids["ravi"]}
    )
    assert bulk.status_code == 404
    with factory() as s:
        owners = dict(
            s.execute(select(Lead.id, Lead.assigned_to).where(Lead.id.in_([leads["p3"], leads["n1"]]))).all()
        )
    assert owners == {leads["p3"]: None, leads["n1"]: w.ids["asha"]}
    again = w.post(
        "tl", "/api/leads/assign", {"lead_ids": [leads["p2"], leads["p3"]], "user_id": w.ids["ravi"]}
    )
    assert again.json() == {"assigned": [leads["p3"]], "unchanged": [leads["p2"]]}


def test_reception_finds_any_customer_by_phone_with_all_their_enquiries(world: World) -> None:
    w, leads = world, world.leads
    found = w.get("desk", "/api/customers", q="09811100001").json()
    assert [c["phone_number_normalized"] for c in found["items"]] == ["+919811100001"]
    assert {e["id"] for e in found["enquiries"]} == {leads["p1"], leads["n2"]}
    # by name, only among the customers of her branch's walk-ins (the walk-in n2 is customer p1's)
    by_name = w.get("desk", "/api/customers", q="Customer").json()
    assert [c["full_name"] for c in by_name["items"]] == ["Customer p1"] and by_name["enquiries"] is None
    # a CRE finds by name only customers with a lead of theirs
    names = {c["full_name"] for c in w.get("asha", "/api/customers", q="customer").json()["items"]}
    assert names == {"Customer p1", "Customer n1"}
    # a role that sees no leads and may not search by phone gets a clear 403, not an empty list
    denied = w.get("dev", "/api/customers", q="98111 00001")
    assert denied.status_code == 403 and "customers.search_phone" in denied.json()["error"]["message"]
    assert _ids(w.get("dev", "/api/leads")) == set()


def test_a_search_of_only_spaces_is_refused_clearly(world: World) -> None:
    for blank in (" ", "\r", " \t "):
        answer = world.get("desk", "/api/customers", q=blank)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_input"


def test_the_journey_shows_what_the_caller_may_see_and_404_otherwise(
    world: World, factory: sessionmaker[Session]
) -> None:
    w, leads = world, world.leads
    with factory() as s:
        customer = s.get(Lead, leads["p1"]).customer_id  # type: ignore[union-attr]
        other = s.get(Lead, leads["p3"]).customer_id  # type: ignore[union-attr]
    full = w.get("boss", f"/api/customers/{customer}/journey").json()
    assert {lead["id"] for lead in full["leads"]} == {leads["p1"], leads["n2"]}
    mine = w.get("asha", f"/api/customers/{customer}/journey").json()
    assert [lead["id"] for lead in mine["leads"]] == [leads["p1"]]
    assert all(e["lead_id"] == leads["p1"] for e in mine["events"])
    assert w.get("asha", f"/api/customers/{other}/journey").status_code == 404
    assert w.get("asha", "/api/customers/999999/journey").status_code == 404


def test_branches_and_sources_need_a_login(world: World) -> None:
    assert world.client.get("/api/branches").status_code == 401
    names = [b["name"] for b in world.get("ravi", "/api/branches").json()]
    assert names == ["Pune", "Nashik"]
    assert {"Website", "Meta", "Walk-in"} <= {
        s["display_name"] for s in world.get("ravi", "/api/sources").json()
    }


def test_an_enquiry_that_lands_on_someone_elses_lead_is_recorded_but_not_shown(world: World) -> None:
    w = world
    answer = w.post("asha", "/api/leads", {"source": "staff", "phone": "+91 98111 00002"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "attached" and body["lead"] is None and body["customer"] is None
    assert w.get("asha", f"/api/leads/{w.leads['p2']}").status_code == 404
    activity = w.get("boss", f"/api/leads/{w.leads['p2']}/activity").json()
    assert activity[-1]["metadata"]["action"] == "repeat_enquiry"  # recorded on the lead all the same
    naive = w.post(
        "asha",
        "/api/leads",
        {"source": "staff", "phone": "98111 00009", "occurred_at": "2026-11-28T10:00:00"},
    )
    assert naive.status_code == 422 and "occurred_at" in naive.json()["error"]["message"]
    assert w.get("boss", "/api/leads", enquired_from="2026-01-01T00:00").status_code == 422
