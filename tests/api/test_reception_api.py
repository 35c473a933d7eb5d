"""The walk-in desk and the team views: hand a walk-in to an RM, the receptionist's day in the business's
time zone, the RM's own leads, a team lead's team."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from leadhub.api.app import create_app
from leadhub.auth import users
from leadhub.config import Settings
from leadhub.db.models import Branch, BranchMember, Customer, IntakeEvent, Lead, LeadQualification
from leadhub.db.session import session_scope
from leadhub.leads.followups import business_day_bounds, business_today

PASSWORD = "correct horse battery"
IST = ZoneInfo("Asia/Kolkata")


@dataclass
class Floor:
    client: TestClient
    tokens: dict[str, str]
    ids: dict[str, int]
    factory: sessionmaker[Session]

    def call(self, who: str, method: str, url: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.request(method, url, json=body, params=params, headers=headers)

    def walk_in(self, who: str, phone: str, branch: str, **extra: Any) -> Any:
        body = {"source": "walk_in", "phone": phone, "branch_id": self.ids[branch], **extra}
        return self.call(who, "POST", "/api/leads", body)

    def queue(self, who: str, name: str) -> list[int]:
        answer = self.call(who, "GET", f"/api/queues/{name}")
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["items"]]


@pytest.fixture
def floor(engine: Engine, factory: sessionmaker[Session]) -> Iterator[Floor]:
    settings = Settings(database_url=str(engine.url), secret_key=SecretStr("s" * 48), timezone="Asia/Kolkata")
    ids: dict[str, int] = {}
    with session_scope(factory) as s:
        pune, nashik = Branch(name="Pune"), Branch(name="Nashik")
        s.add_all([pune, nashik])
        s.flush()
        ids |= {"pune": pune.id, "nashik": nashik.id}
        staff = [("desk", "Receptionist", pune.id), ("desk2", "Receptionist", nashik.id), ("rm", "RM", pune.id),
                 ("rm2", "RM", pune.id), ("rm_n", "RM", nashik.id), ("rmtl", "RM_TL", pune.id),
                 ("cre", "CRE", None), ("boss", "Admin", None)]  # fmt: skip
        for name, role, branch in staff:
            grants = [users.BranchGrant(branch)] if branch else []
            ids[name] = users.create_user(
                s, username=name, role=role, password=PASSWORD, branches=grants
            ).user_id
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:
        tokens = {}
        for name, _, _ in staff:
            tokens[name] = client.post(
                "/api/auth/login", json={"username": name, "password": PASSWORD}
            ).json()["access_token"]
        yield Floor(client, tokens, ids, factory)


def test_a_walk_in_handed_to_an_rm_is_theirs_and_a_repeat_visit_is_logged_not_duplicated(
    floor: Floor,
) -> None:
    first = floor.walk_in("desk", "98765 43210", "pune", name="Asha", rm_user_id=floor.ids["rm"])
    assert first.status_code == 201, first.text
    lead = first.json()["lead"]
    assert lead["assigned_to"] == floor.ids["rm"]
    assert floor.queue("rm", "mine") == [lead["id"]]
    assert floor.call("rm", "GET", f"/api/leads/{lead['id']}").status_code == 200
    assert floor.queue("rmtl", "team") == [lead["id"]]
    assert floor.queue("rm2", "mine") == []
    with session_scope(floor.factory) as s:
        member = s.execute(
            select(BranchMember.id).where(BranchMember.user_id == floor.ids["rm"])
        ).scalar_one()
        rm_ids = s.execute(
            select(LeadQualification.rm_id).where(LeadQualification.lead_id == lead["id"])
        ).all()
    assert [r.rm_id for r in rm_ids] == [member]  # the legacy app reads branch_members ids here
    again = floor.walk_in("desk", "+91 98765 43210", "pune")
    assert again.status_code == 200 and again.json()["status"] == "attached"
    assert again.json()["lead"]["id"] == lead["id"]
    actions = [
        row["metadata"].get("action")
        for row in floor.call("boss", "GET", f"/api/leads/{lead['id']}/activity").json()
    ]
    assert actions.count("handed_to_rm") == 1 and "repeat_enquiry" in actions
    with session_scope(floor.factory) as s:
        assert s.execute(select(func.count()).select_from(Lead)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(Customer)).scalar_one() == 1


def test_handing_over_a_lead_already_owned_keeps_the_owner_and_moves_the_rm(floor: Floor) -> None:
    lead = floor.walk_in("desk", "98765 00001", "pune").json()["lead"]
    with session_scope(floor.factory) as s:
        s.execute(update(Lead).where(Lead.id == lead["id"]).values(assigned_to=floor.ids["cre"]))
    moved = floor.call(
        "desk", "POST", f"/api/leads/{lead['id']}/rm", {"user_id": floor.ids["rm2"], "why": "asked for Ravi"}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["assigned"] is False
    assert floor.call("boss", "GET", f"/api/leads/{lead['id']}").json()["assigned_to"] == floor.ids["cre"]
    assert floor.queue("rm2", "mine") == [lead["id"]] and floor.queue("cre", "mine") == [lead["id"]]
    # The same hand-off again changes nothing.
    before = len(floor.call("boss", "GET", f"/api/leads/{lead['id']}/activity").json())
    assert (
        floor.call("desk", "POST", f"/api/leads/{lead['id']}/rm", {"user_id": floor.ids["rm2"]}).status_code
        == 200
    )
    assert len(floor.call("boss", "GET", f"/api/leads/{lead['id']}/activity").json()) == before


def test_a_lead_goes_only_to_an_active_rm_of_its_own_branch(floor: Floor) -> None:
    wrong_branch = floor.walk_in("desk", "98765 00002", "pune", rm_user_id=floor.ids["rm_n"])
    assert wrong_branch.status_code == 422
    assert "not an active RM of branch" in wrong_branch.json()["error"]["message"]
    not_rm = floor.walk_in("desk", "98765 00002", "pune", rm_user_id=floor.ids["desk"])
    assert not_rm.status_code == 422
    with session_scope(
        floor.factory
    ) as s:  # the refused request stored nothing: send it again without the RM
        assert s.execute(select(func.count()).select_from(Lead)).scalar_one() == 0
    lead = floor.walk_in("desk", "98765 00002", "pune").json()["lead"]
    floor.call("boss", "PATCH", f"/api/users/{floor.ids['rm']}", {"active": False})
    disabled = floor.call("desk", "POST", f"/api/leads/{lead['id']}/rm", {"user_id": floor.ids["rm"]})
    assert disabled.status_code == 422


def test_who_may_hand_a_lead_to_an_rm(floor: Floor) -> None:
    lead = floor.walk_in("desk", "98765 00003", "pune").json()["lead"]
    with session_scope(floor.factory) as s:
        s.execute(update(Lead).where(Lead.id == lead["id"]).values(assigned_to=floor.ids["cre"]))
    body = {"user_id": floor.ids["rm"]}
    assert (
        floor.call("cre", "POST", f"/api/leads/{lead['id']}/rm", body).status_code == 403
    )  # sees it, may not
    assert floor.call("desk2", "POST", f"/api/leads/{lead['id']}/rm", body).status_code == 404  # other branch
    assert floor.call("rm", "POST", f"/api/leads/{lead['id']}/rm", body).status_code == 403  # RM: no
    assert floor.call("boss", "POST", f"/api/leads/{lead['id']}/rm", body).status_code == 200
    cre_walk_in = floor.call("cre", "POST", "/api/leads", {"source": "staff", "phone": "98765 00004",
                                                           "branch_id": floor.ids["pune"], "rm_user_id": floor.ids["rm"]})  # fmt: skip
    assert cre_walk_in.status_code == 403


def test_the_receptionists_day_is_todays_walk_in_visits_at_her_branch_in_ist(floor: Floor) -> None:
    today = floor.walk_in("desk", "98765 00010", "pune").json()["lead"]["id"]
    repeat = floor.walk_in("desk", "98765 00011", "pune").json()["lead"]["id"]
    yesterday_only = floor.walk_in("desk", "98765 00012", "pune").json()["lead"]["id"]
    elsewhere = floor.walk_in("desk2", "98765 00013", "nashik").json()["lead"]["id"]
    website = floor.call("boss", "POST", "/api/leads", {"source": "website", "phone": "98765 00014",
                                                        "branch_id": floor.ids["pune"]}).json()["lead"]["id"]  # fmt: skip
    start, _ = business_day_bounds(business_today(tz=IST), IST)
    with session_scope(floor.factory) as s:
        # Visits before today's IST midnight (18:30 UTC the day before) belong to yesterday.
        s.execute(update(IntakeEvent).where(IntakeEvent.lead_id.in_([repeat, yesterday_only]))
                  .values(received_at=start - timedelta(minutes=1)))  # fmt: skip
    floor.walk_in("desk", "98765 00011", "pune")  # a repeat visit today
    assert floor.queue("desk", "walkins_today") == [repeat, today]
    assert floor.queue("desk2", "walkins_today") == [elsewhere]
    assert set(floor.queue("boss", "walkins_today")) == {today, repeat, elsewhere}
    assert website not in floor.queue("boss", "walkins_today")
    with session_scope(floor.factory) as s:
        s.execute(update(IntakeEvent).where(IntakeEvent.lead_id == yesterday_only)
                  .values(received_at=start + timedelta(minutes=1)))  # fmt: skip
    assert yesterday_only in floor.queue("desk", "walkins_today")
