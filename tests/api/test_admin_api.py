"""Administration over HTTP: users, branch memberships, roles as data, API keys, branches; and the rule
that no one hands out more than they hold."""

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
from leadhub.db.models import Branch, BranchMember
from leadhub.db.session import session_scope

PASSWORD = "correct horse battery"
ROLES = ["Admin", "CRE", "CRE_TL", "Receptionist", "RM", "RM_TL", "GM", "Developer"]


@dataclass
class Desk:
    client: TestClient
    tokens: dict[str, str]
    branches: dict[str, int]

    def call(self, who: str, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        headers = (
            {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {"X-API-Key": who}
        )
        return self.client.request(method, url, json=body, headers=headers)

    def login(self, username: str, password: str = PASSWORD) -> Any:
        return self.client.post("/api/auth/login", json={"username": username, "password": password})


@pytest.fixture
def desk(engine: Engine, factory: sessionmaker[Session]) -> Iterator[Desk]:
    settings = Settings(database_url=str(engine.url), secret_key=SecretStr("s" * 48))
    with session_scope(factory) as s:
        pune, nashik = Branch(name="Pune"), Branch(name="Nashik")
        s.add_all([pune, nashik])
        s.flush()
        branches = {"pune": pune.id, "nashik": nashik.id}
        for role in ROLES:
            grants = [users.BranchGrant(pune.id, "TL" if role == "GM" else None)]
            grants = [] if role in ("Admin", "CRE", "Developer") else grants
            users.create_user(s, username=role.lower(), role=role, password=PASSWORD, branches=grants)
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:
        tokens = {}
        for role in ROLES:
            answer = client.post("/api/auth/login", json={"username": role.lower(), "password": PASSWORD})
            assert answer.status_code == 200, answer.text
            tokens[role.lower()] = answer.json()["access_token"]
        yield Desk(client, tokens, branches)


def test_an_admin_creates_a_user_who_then_logs_in_with_their_branch(desk: Desk) -> None:
    made = desk.call("admin", "POST", "/api/users", {
        "username": "meera", "password": "a long password", "role": "CRE", "full_name": "Meera Shah",
        "branches": [{"branch_id": desk.branches["pune"]}],
    })  # fmt: skip
    assert made.status_code == 201, made.text
    user = made.json()
    assert user["role"] == "CRE" and user["active"] is True
    assert [(b["branch_id"], b["role"]) for b in user["branches"]] == [(desk.branches["pune"], "CRE")]
    assert desk.call("admin", "GET", f"/api/users/{user['user_id']}").json() == user
    assert desk.login("meera", "a long password").status_code == 200
    again = desk.call(
        "admin", "POST", "/api/users", {"username": "meera", "password": PASSWORD, "role": "CRE"}
    )
    assert again.status_code == 409 and "already exists" in again.json()["error"]["message"]
    unknown = desk.call(
        "admin", "POST", "/api/users", {"username": "z", "password": PASSWORD, "role": "Pilot"}
    )
    assert unknown.status_code == 404 and "Pilot" in unknown.json()["error"]["message"]


def test_a_role_change_or_a_disable_ends_the_users_sessions_at_once(desk: Desk) -> None:
    cre_id = desk.call("cre", "GET", "/api/auth/me").json()["user_id"]
    changed = desk.call("admin", "PATCH", f"/api/users/{cre_id}", {"role": "CRE_TL", "full_name": "Ravi K"})
    assert changed.status_code == 200 and changed.json()["role"] == "CRE_TL"
    assert changed.json()["full_name"] == "Ravi K"
    assert desk.call("cre", "GET", "/api/auth/me").status_code == 401  # the old token's login ended
    token = desk.login("cre").json()["access_token"]
    desk.tokens["cre"] = token
    assert desk.call("cre", "GET", "/api/auth/me").json()["role"] == "CRE_TL"
    # A name change alone keeps the session.
    assert desk.call("admin", "PATCH", f"/api/users/{cre_id}", {"full_name": "Ravi Kumar"}).status_code == 200
    assert desk.call("cre", "GET", "/api/auth/me").status_code == 200
    assert desk.call("admin", "PATCH", f"/api/users/{cre_id}", {"active": False}).json()["active"] is False
    assert desk.call("cre", "GET", "/api/auth/me").status_code == 401
    assert desk.login("cre").status_code == 401
    assert desk.call("admin", "PATCH", f"/api/users/{cre_id}", {"active": True}).json()["active"] is True
    assert desk.login("cre").status_code == 200


def test_a_new_password_replaces_the_old_one_and_ends_sessions(desk: Desk) -> None:
    rm_id = desk.call("rm", "GET", "/api/auth/me").json()["user_id"]
    done = desk.call("admin", "POST", f"/api/users/{rm_id}/password", {"password": "another secret"})
    assert done.status_code == 204
    assert desk.call("rm", "GET", "/api/auth/me").status_code == 401
    assert desk.login("rm").status_code == 401
    assert desk.login("rm", "another secret").status_code == 200


def test_branch_membership_is_added_once_and_ended_without_deleting_the_row(
    desk: Desk, factory: sessionmaker[Session]
) -> None:
    rm_id = desk.call("rm", "GET", "/api/auth/me").json()["user_id"]
    nashik = desk.branches["nashik"]
    for _ in range(2):  # repeating the call changes nothing
        added = desk.call("admin", "POST", f"/api/users/{rm_id}/branches", {"branch_id": nashik})
        assert added.status_code == 201, added.text
    assert sorted(b["branch_id"] for b in added.json()["branches"]) == sorted(desk.branches.values())
    assert (
        desk.call("admin", "POST", f"/api/users/{rm_id}/branches", {"branch_id": 999999}).status_code == 404
    )
    bad_role = desk.call("admin", "POST", f"/api/users/{rm_id}/branches", {"branch_id": nashik, "role": "GM"})
    assert bad_role.status_code == 422
    assert desk.call("admin", "DELETE", f"/api/users/{rm_id}/branches/{nashik}").status_code == 204
    assert desk.call("admin", "DELETE", f"/api/users/{rm_id}/branches/{nashik}").status_code == 404
    assert [b["branch_id"] for b in desk.call("admin", "GET", f"/api/users/{rm_id}").json()["branches"]] == [
        desk.branches["pune"]
    ]
    with session_scope(factory) as s:
        rows = s.execute(
            select(BranchMember.is_active).where(
                BranchMember.user_id == rm_id, BranchMember.branch_id == nashik
            )
        ).all()
    assert [r.is_active for r in rows] == [False]  # kept, inactive


def test_a_user_manager_cannot_make_or_touch_anyone_more_powerful_than_themselves(desk: Desk) -> None:
    admin_id = desk.call("admin", "GET", "/api/auth/me").json()["user_id"]
    cre_id = desk.call("cre", "GET", "/api/auth/me").json()["user_id"]
    # Developer holds users.manage but not leads.view_all etc.
    made_admin = desk.call(
        "developer", "POST", "/api/users", {"username": "x1", "password": PASSWORD, "role": "Admin"}
    )
    assert made_admin.status_code == 403 and "leads.view_all" in made_admin.json()["error"]["message"]
    made_cre = desk.call(
        "developer", "POST", "/api/users", {"username": "x2", "password": PASSWORD, "role": "CRE"}
    )
    assert made_cre.status_code == 403  # a CRE works leads; the Developer does not hold leads.create
    assert desk.call("developer", "PATCH", f"/api/users/{admin_id}", {"active": False}).status_code == 403
    assert (
        desk.call(
            "developer", "POST", f"/api/users/{admin_id}/password", {"password": "mine mine mine"}
        ).status_code
        == 403
    )
    assert desk.call("developer", "PATCH", f"/api/users/{cre_id}", {"role": "Admin"}).status_code == 403
    assert desk.login("admin").status_code == 200  # untouched
    made_dev = desk.call(
        "developer", "POST", "/api/users", {"username": "x3", "password": PASSWORD, "role": "Developer"}
    )
    assert made_dev.status_code == 201


def test_a_role_defined_as_data_grants_exactly_its_permissions(desk: Desk) -> None:
    made = desk.call("admin", "POST", "/api/roles", {
        "name": "Finance", "description": "Sees every lead, approves bookings",
        "permissions": ["leads.view_all", "bookings.approve"],
    })  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json() == {"name": "Finance", "built_in": False, "description": "Sees every lead, approves bookings",
                           "permissions": ["bookings.approve", "leads.view_all"]}  # fmt: skip
    assert desk.call("admin", "POST", "/api/roles", {"name": "Finance"}).status_code == 409
    bad = desk.call("admin", "POST", "/api/roles", {"name": "Service", "permissions": ["leads.fly"]})
    assert bad.status_code == 422 and "leads.fly" in bad.json()["error"]["message"]
    assert desk.call("admin", "POST", "/api/users",
                     {"username": "fin", "password": PASSWORD, "role": "Finance"}).status_code == 201  # fmt: skip
    desk.tokens["fin"] = desk.login("fin").json()["access_token"]
    assert desk.call("fin", "GET", "/api/leads").status_code == 200
    assert desk.call("fin", "GET", "/api/users").status_code == 403
    changed = desk.call("admin", "PUT", "/api/roles/Finance/permissions", {"permissions": ["users.view"]})
    assert changed.json()["permissions"] == ["users.view"]
    # The same token, the next request: the role's new permissions apply.
    assert desk.call("fin", "GET", "/api/users").status_code == 200
    assert desk.call("fin", "GET", "/api/leads").json()["items"] == []
    narrowed = desk.call("admin", "PUT", "/api/roles/Admin/permissions", {"permissions": ["users.view"]})
    assert narrowed.status_code == 422
    assert desk.call("admin", "PUT", "/api/roles/Nobody/permissions", {"permissions": []}).status_code == 404


def test_a_role_manager_cannot_grant_a_permission_they_lack(desk: Desk) -> None:
    desk.call(
        "admin", "POST", "/api/roles", {"name": "RoleKeeper", "permissions": ["roles.manage", "users.view"]}
    )
    desk.call(
        "admin", "POST", "/api/users", {"username": "keeper", "password": PASSWORD, "role": "RoleKeeper"}
    )
    desk.tokens["keeper"] = desk.login("keeper").json()["access_token"]
    wide = desk.call("keeper", "POST", "/api/roles", {"name": "Wide", "permissions": ["leads.view_all"]})
    assert wide.status_code == 403 and "leads.view_all" in wide.json()["error"]["message"]
    assert desk.call("keeper", "PUT", "/api/roles/RoleKeeper/permissions",
                     {"permissions": ["roles.manage", "users.view", "users.manage"]}).status_code == 403  # fmt: skip
    # ...nor reshape a role that already holds more than they do.
    assert desk.call("keeper", "PUT", "/api/roles/CRE/permissions", {"permissions": []}).status_code == 403
    narrow = desk.call("keeper", "POST", "/api/roles", {"name": "Viewer", "permissions": ["users.view"]})
    assert narrow.status_code == 201


def test_an_api_key_is_shown_once_acts_as_its_role_and_stops_when_revoked(desk: Desk) -> None:
    made = desk.call("admin", "POST", "/api/api-keys", {"name": "website", "role": "CRE_TL"})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    listed = desk.call("admin", "GET", "/api/api-keys").json()
    assert [(k["name"], k["role"], k["revoked_at"]) for k in listed] == [("website", "CRE_TL", None)]
    assert key not in str(listed) and key.startswith(listed[0]["key_prefix"])
    assert desk.call(key, "GET", "/api/auth/me").json()["role"] == "CRE_TL"
    assert desk.call("admin", "POST", "/api/api-keys", {"name": "website", "role": "CRE"}).status_code == 409
    assert desk.call("admin", "DELETE", "/api/api-keys/website").status_code == 204
    assert desk.call(key, "GET", "/api/auth/me").status_code == 401
    assert desk.call("admin", "DELETE", "/api/api-keys/website").status_code == 404
    assert desk.call("admin", "DELETE", "/api/api-keys/nothing").status_code == 404


def test_a_branch_is_created_by_whoever_configures_and_needs_a_name(desk: Desk) -> None:
    made = desk.call("cre_tl", "POST", "/api/branches", {"name": " Thane ", "city": "Thane"})
    assert made.status_code == 201 and made.json()["name"] == "Thane" and made.json()["is_active"] is True
    assert made.json()["id"] in [b["id"] for b in desk.call("cre", "GET", "/api/branches").json()]
    assert desk.call("cre", "POST", "/api/branches", {"name": "Nope"}).status_code == 403
    assert desk.call("admin", "POST", "/api/branches", {"name": "   "}).status_code == 422


# role -> the designed answer on each administration endpoint (403: the role lacks the permission).
ADMIN_ENDPOINTS = ["list users", "read user", "create user", "patch user", "list roles", "create role",
                   "list keys", "create key", "create branch"]  # fmt: skip
OK, MADE, NO = 200, 201, 403
ADMIN_DESIGN: dict[str, tuple[int, ...]] = {
    "Admin": (OK, OK, MADE, OK, OK, MADE, OK, MADE, MADE),
    "CRE": (NO, NO, NO, NO, NO, NO, NO, NO, NO),
    "CRE_TL": (OK, OK, NO, NO, OK, NO, NO, NO, MADE),
    "Receptionist": (NO, NO, NO, NO, NO, NO, NO, NO, NO),
    "RM": (NO, NO, NO, NO, NO, NO, NO, NO, NO),
    "RM_TL": (OK, OK, NO, NO, OK, NO, NO, NO, NO),
    "GM": (OK, OK, NO, NO, OK, NO, NO, NO, NO),
    "Developer": (OK, OK, MADE, OK, OK, NO, NO, NO, NO),
}


def test_every_role_gets_the_designed_answer_on_every_administration_endpoint(desk: Desk) -> None:
    wrong = []
    for role in ROLES:
        who = role.lower()
        target = desk.call("admin", "POST", "/api/users", {"username": f"t-{who}", "password": PASSWORD,
                                                           "role": "Developer"}).json()["user_id"]  # fmt: skip
        requests: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", "/api/users", None),
            ("GET", f"/api/users/{target}", None),
            ("POST", "/api/users", {"username": f"n-{who}", "password": PASSWORD, "role": "Developer"}),
            ("PATCH", f"/api/users/{target}", {"full_name": "Changed"}),
            ("GET", "/api/roles", None),
            ("POST", "/api/roles", {"name": f"R {who}", "permissions": []}),
            ("GET", "/api/api-keys", None),
            ("POST", "/api/api-keys", {"name": f"k-{who}", "role": "Developer"}),
            ("POST", "/api/branches", {"name": f"B {who}"}),
        ]
        for name, (method, url, body), want in zip(
            ADMIN_ENDPOINTS, requests, ADMIN_DESIGN[role], strict=True
        ):
            got = desk.call(who, method, url, body).status_code
            if got != want:
                wrong.append(f"{role} {name}: {got}, designed {want}")
    assert not wrong, "\n".join(wrong)
