"""Working a lead over the API: calls, follow-ups, qualification, status, notes, activity, queues."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from leadhub.api.app import create_app
from leadhub.auth import users
from leadhub.config import Settings
from leadhub.db.models import Branch, Lead
from leadhub.db.session import session_scope
from leadhub.leads.followups import business_day_bounds, business_today
from leadhub.leads.intake import Channel, Intake, ingest

PASSWORD = "correct horse battery"
ADMIN_KEY = "a" * 32


@dataclass
class Desk:
    client: TestClient
    tokens: dict[str, str]
    leads: dict[str, int]

    def call(self, who: str, method: str, url: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        headers = (
            {"X-API-Key": ADMIN_KEY} if who == "key" else {"Authorization": f"Bearer {self.tokens[who]}"}
        )
        return self.client.request(method, url, json=body, params=params, headers=headers)


@pytest.fixture
def desk(engine: Engine, factory: sessionmaker[Session]) -> Iterator[Desk]:
    settings = Settings(database_url=str(engine.url), admin_api_key=SecretStr(ADMIN_KEY),
                        secret_key=SecretStr("s" * 48))  # fmt: skip
    leads: dict[str, int] = {}
    with session_scope(factory) as s:
        pune = Branch(name="Pune")
        s.add(pune)
        s.flush()
        ids = {}
        for name, role, branch in [("asha", "CRE", None), ("ravi", "CRE", None), ("tl", "CRE_TL", pune.id),
                                   ("desk", "Receptionist", pune.id)]:  # fmt: skip
            grants = [users.BranchGrant(branch_id=branch)] if branch else []
            ids[name] = users.create_user(
                s, username=name, role=role, password=PASSWORD, branches=grants
            ).user_id
        for key, phone, owner in [("a1", "98222 00001", "asha"), ("a2", "98222 00002", "asha"),
                                  ("free", "98222 00003", None)]:  # fmt: skip
            lead_id = ingest(s, Intake(source=Channel.WEBSITE, phone=phone, branch_id=pune.id)).lead_id
            assert lead_id is not None
            leads[key] = lead_id
            if owner:
                s.execute(update(Lead).where(Lead.id == lead_id).values(assigned_to=ids[owner]))
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:
        tokens = {}
        for name in ("asha", "ravi", "tl", "desk"):
            tokens[name] = client.post(
                "/api/auth/login", json={"username": name, "password": PASSWORD}
            ).json()["access_token"]
        yield Desk(client, tokens, leads)


def test_a_cre_works_a_lead_from_first_call_to_lost_and_back(desk: Desk) -> None:
    lead = desk.leads["a1"]
    called = desk.call("asha", "POST", f"/api/leads/{lead}/calls", {"outcome": "RNR"})
    assert called.status_code == 200, called.text
    assert called.json()["to_state"] == "contacted" and called.json()["total_attempts"] == 1
    past = desk.call("asha", "POST", f"/api/leads/{lead}/follow-ups",
                     {"at": "2020-01-01T10:00:00+05:30", "remarks": "call back"})  # fmt: skip
    assert past.status_code == 422 and "future" in past.json()["error"]["message"]
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    pending = desk.call(
        "asha", "POST", f"/api/leads/{lead}/follow-ups", {"at": later, "remarks": "after payday"}
    )
    assert pending.json()["to_state"] == "pending" and pending.json()["total_attempts"] == 2
    qualified = desk.call("asha", "POST", f"/api/leads/{lead}/qualify", {"category": "Hot", "model": "Creta"})
    assert qualified.json()["to_state"] == "qualified"
    no_reason = desk.call("asha", "POST", f"/api/leads/{lead}/status", {"action": "lose"})
    assert no_reason.status_code == 422 and "reason is required" in no_reason.json()["error"]["message"]
    reason = desk.call("asha", "GET", "/api/reasons", kind="lost").json()[0]["code"]
    lost = desk.call("asha", "POST", f"/api/leads/{lead}/status", {"action": "lose", "reason": reason})
    assert lost.json()["from_state"] == "qualified" and lost.json()["to_state"] == "lost"
    won = desk.call("asha", "POST", f"/api/leads/{lead}/status", {"action": "won"})
    assert won.status_code == 409 and "lost" in won.json()["error"]["message"]
    reopened = desk.call(
        "asha", "POST", f"/api/leads/{lead}/status", {"action": "reopen", "remarks": "came back"}
    )
    assert reopened.json()["to_state"] == "contacted"
    note = desk.call("asha", "POST", f"/api/leads/{lead}/notes", {"text": "prefers evenings"})
    assert note.status_code == 201
    history = desk.call("asha", "GET", f"/api/leads/{lead}/activity").json()
    actions = [row["metadata"].get("action") for row in history if row["metadata"]]
    assert actions[-6:] == [
        "call_attempt",
        "lead_pending",
        "lead_qualified",
        "lead_lost",
        "lead_reopened",
        "note",
    ]
    assert all(row["by"] is not None for row in history[-6:])


def test_who_may_work_a_lead(desk: Desk) -> None:
    lead = desk.leads["a2"]
    body = {"outcome": "busy"}
    assert desk.call("ravi", "POST", f"/api/leads/{lead}/calls", body).status_code == 404  # not his lead
    assert desk.call("desk", "POST", f"/api/leads/{lead}/calls", body).status_code == 403  # no leads.update
    keyed = desk.call("key", "POST", f"/api/leads/{lead}/calls", body)
    assert keyed.status_code == 403 and "log in as a user" in keyed.json()["error"]["message"]
    assert desk.call("tl", "POST", f"/api/leads/{lead}/calls", body).status_code == 200  # in the TL's branch
    assert desk.call("ravi", "GET", f"/api/leads/{lead}/activity").status_code == 404


def test_queues_follow_the_business_day_and_the_scope(desk: Desk, factory: sessionmaker[Session]) -> None:
    tz = ZoneInfo("Asia/Kolkata")
    start, _ = business_day_bounds(business_today(tz=tz), tz)
    with session_scope(factory) as s:
        s.execute(
            update(Lead)
            .where(Lead.id == desk.leads["a1"])
            .values(next_followup_at=start + timedelta(seconds=1))
        )
        s.execute(
            update(Lead)
            .where(Lead.id == desk.leads["a2"])
            .values(next_followup_at=start - timedelta(hours=1))
        )

    def ids(who: str, queue: str) -> set[int]:
        answer = desk.call(who, "GET", f"/api/queues/{queue}")
        assert answer.status_code == 200, answer.text
        return {item["id"] for item in answer.json()["items"]}

    assert ids("asha", "followups_today") == {
        desk.leads["a1"]
    }  # 00:00:01 IST today, though UTC says yesterday
    assert ids("asha", "followups_overdue") == {desk.leads["a2"]}
    assert ids("asha", "mine") == {desk.leads["a1"], desk.leads["a2"]}
    assert ids("asha", "unassigned") == set()  # a CRE sees only her own leads
    assert ids("tl", "unassigned") == {desk.leads["free"]}
    assert desk.call("asha", "GET", "/api/queues/nonsense").status_code == 422


def test_the_cre_tabs_follow_the_lead_through_its_states(desk: Desk) -> None:
    def tab(name: str) -> set[int]:
        return {item["id"] for item in desk.call("asha", "GET", f"/api/queues/{name}").json()["items"]}

    a1, a2 = desk.leads["a1"], desk.leads["a2"]
    assert tab("fresh") == {a1, a2} and tab("called") == set()
    desk.call("asha", "POST", f"/api/leads/{a1}/calls", {"outcome": "RNR"})
    assert tab("fresh") == {a2} and tab("called") == {a1}
    desk.call("asha", "POST", f"/api/leads/{a1}/qualify", {"category": "Warm", "model": "Venue"})
    assert tab("qualified") == {a1} and tab("called") == set()
    reason = desk.call("asha", "GET", "/api/reasons", kind="disqualified").json()[0]["code"]
    desk.call("asha", "POST", f"/api/leads/{a2}/status", {"action": "disqualify", "reason": reason})
    assert tab("lost") == {a2} and tab("fresh") == set()
