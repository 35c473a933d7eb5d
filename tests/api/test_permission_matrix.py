"""Every built-in role x the record endpoints x a record of theirs and one of another branch / user,
over HTTP, against the designed answer. A record outside the caller's scope is 404 (as if missing);
a permission the role lacks is 403, checked before the record is looked up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.api.app import create_app
from leadhub.auth import users
from leadhub.config import Settings
from leadhub.db.models import Branch, BranchMember, Lead, LeadQualification
from leadhub.db.session import session_scope
from leadhub.leads.intake import Channel, Intake, ingest

PASSWORD = "correct horse battery"
ROLES = ["Admin", "CRE", "CRE_TL", "Receptionist", "RM", "RM_TL", "GM", "Developer"]
# role -> (own-record answers, other-branch-record answers) for: read, activity, journey, call, assign,
# note, follow-up, qualify, hand to an RM. The other branch has no RM: a hand-off there is refused (422)
# to whoever may see the lead and hand leads over.
OK, NF, NO, BAD, NEW = 200, 404, 403, 422, 201  # NEW: a note is a new activity row
DESIGN: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "Admin": ((OK, OK, OK, OK, OK, NEW, OK, OK, OK), (OK, OK, OK, OK, OK, NEW, OK, OK, BAD)),
    "CRE": ((OK, OK, OK, OK, NO, NEW, OK, OK, NO), (NF, NF, NF, NF, NO, NF, NF, NF, NO)),
    "CRE_TL": ((OK, OK, OK, OK, OK, NEW, OK, OK, OK), (NF, NF, NF, NF, NF, NF, NF, NF, NF)),
    "Receptionist": ((OK, OK, OK, NO, NO, NO, NO, NO, OK), (NF, NF, NF, NO, NO, NO, NO, NO, NF)),
    "RM": ((OK, OK, OK, OK, NO, NEW, OK, OK, NO), (NF, NF, NF, NF, NO, NF, NF, NF, NO)),
    "RM_TL": ((OK, OK, OK, OK, OK, NEW, OK, OK, OK), (NF, NF, NF, NF, NF, NF, NF, NF, NF)),
    "GM": ((OK, OK, OK, NO, NO, NO, NO, NO, NO), (NF, NF, NF, NO, NO, NO, NO, NO, NO)),
    "Developer": ((NF, NF, NF, NO, NO, NO, NO, NO, NO), (NF, NF, NF, NO, NO, NO, NO, NO, NO)),
}
LATER = (datetime.now(UTC) + timedelta(days=2)).isoformat()


def _requests(
    lead: int, customer: int, assignee: int, rm: int
) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/api/leads/{lead}", None),
        ("GET", f"/api/leads/{lead}/activity", None),
        ("GET", f"/api/customers/{customer}/journey", None),
        ("POST", f"/api/leads/{lead}/calls", {"outcome": "RNR"}),
        ("POST", f"/api/leads/{lead}/assign", {"user_id": assignee}),
        ("POST", f"/api/leads/{lead}/notes", {"text": "asked for the brochure"}),
        ("POST", f"/api/leads/{lead}/follow-ups", {"at": LATER, "remarks": "call back"}),
        ("POST", f"/api/leads/{lead}/qualify", {"category": "Hot", "model": "Nexon"}),
        ("POST", f"/api/leads/{lead}/rm", {"user_id": rm}),
    ]


def test_every_role_gets_the_designed_answer_on_its_own_and_another_branchs_records(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    with session_scope(factory) as s:
        a, b = Branch(name="Pune"), Branch(name="Nashik")
        s.add_all([a, b])
        s.flush()
        uid = {}
        for role in ROLES:
            # a GM's membership row has no legacy branch role of its own: recorded as TL
            branch_role = "TL" if role == "GM" else None
            grants = [] if role in ("Admin", "CRE", "Developer") else [users.BranchGrant(a.id, branch_role)]
            uid[role] = users.create_user(s, username=role.lower(), role=role, password=PASSWORD,
                                          branches=grants).user_id  # fmt: skip
        other_cre = users.create_user(s, username="other", role="CRE", password=PASSWORD).user_id
        rm_member = s.execute(select(BranchMember.id).where(BranchMember.user_id == uid["RM"])).scalar_one()
        lead_a = ingest(s, Intake(source=Channel.WEBSITE, phone="98444 00001", branch_id=a.id))
        walk_in = ingest(s, Intake(source=Channel.WALK_IN, phone="98444 00002", branch_id=a.id))
        lead_b = ingest(s, Intake(source=Channel.WEBSITE, phone="98444 00003", branch_id=b.id))
        s.get(Lead, lead_a.lead_id).assigned_to = uid["CRE"]  # type: ignore[union-attr]
        s.get(Lead, lead_b.lead_id).assigned_to = other_cre  # type: ignore[union-attr]
        s.add(LeadQualification(lead_id=lead_a.lead_id, rm_id=rm_member, branch_id=a.id))  # handed to the RM
    own = dict.fromkeys(ROLES, lead_a) | {"Receptionist": walk_in}
    settings = Settings(database_url=str(engine.url), secret_key=SecretStr("s" * 48))
    wrong = []
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:
        for role in ROLES:
            token = client.post(
                "/api/auth/login", json={"username": role.lower(), "password": PASSWORD}
            ).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            for which, result in (("own", own[role]), ("other", lead_b)):
                assert result.lead_id is not None and result.customer_id is not None
                expected = DESIGN[role][0 if which == "own" else 1]
                # assigning a lead to its current owner changes nothing, so the matrix does not move records
                owner = other_cre if which == "other" else uid["CRE"]
                for (method, path, body), want in zip(
                    _requests(result.lead_id, result.customer_id, owner, uid["RM"]), expected, strict=True
                ):
                    got = client.request(method, path, json=body, headers=headers).status_code
                    if got != want:
                        wrong.append(f"{role} {which} {method} {path}: {got}, designed {want}")
    assert not wrong, "\n".join(wrong)
