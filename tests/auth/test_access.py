"""The permission matrix: every built-in role (and a data-defined one, and API keys) against leads of
its own and another branch, its own records and other users' records, through lead_scope and
can_see_lead, on the real database."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.auth import roles
from leadhub.auth.access import (
    Actor,
    actor_for_user,
    authorize_intake,
    can_see_lead,
    get_lead,
    lead_scope,
    role_permissions,
)
from leadhub.db.models import Branch, BranchMember, Lead, LeadQualification, Source, User
from leadhub.errors import NotFoundError, PermissionDenied


@dataclass
class World:
    users: dict[str, int]
    members: dict[str, int]
    leads: dict[str, int]
    branch_a: int
    branch_b: int


def _user(s: Session, username: str, role: str) -> User:
    user = User(username=username, role=role, status=True)
    s.add(user)
    s.flush()
    return user


def _member(s: Session, user: User, branch: int, role: str, *, active: bool = True) -> int:
    member = BranchMember(branch_id=branch, user_id=user.user_id, role=role, is_active=active)
    s.add(member)
    s.flush()
    return member.id


@pytest.fixture
def world(factory: sessionmaker[Session]) -> World:
    with factory() as s:
        a, b = Branch(name="Pune Baner"), Branch(name="Mumbai Andheri")
        walk_in = Source(display_name="Walk-in", source_type="walk_in")
        meta = Source(display_name="Meta", source_type="meta_form")
        s.add_all([a, b, walk_in, meta])
        s.flush()
        u = {name: _user(s, name, role) for name, role in [
            ("admin", "Admin"), ("cre", "CRE"), ("other_cre", "CRE"), ("cre_tl", "CRE_TL"),
            ("cre_tl_group", "CRE_TL"), ("recep", "Receptionist"), ("recep_b", "Receptionist"), ("rm", "RM"),
            ("rm_a2", "RM"), ("rm_b", "RM"), ("rm_tl", "RM_TL"), ("gm", "GM"), ("gm_group", "GM"),
            ("dev", "Developer"), ("rm_gone", "RM"), ("finance", "Finance"),
        ]}  # fmt: skip
        m = {
            "cre": _member(s, u["cre"], a.id, "CRE"),
            "other_cre": _member(s, u["other_cre"], a.id, "CRE"),
            "cre_tl": _member(s, u["cre_tl"], a.id, "TL"),
            "recep": _member(s, u["recep"], a.id, "Receptionist"),
            "recep_b": _member(s, u["recep_b"], b.id, "Receptionist"),
            "rm": _member(s, u["rm"], a.id, "RM"),
            "rm_a2": _member(s, u["rm_a2"], a.id, "RM"),
            "rm_b": _member(s, u["rm_b"], b.id, "RM"),
            "rm_tl": _member(s, u["rm_tl"], a.id, "TL"),
            "gm": _member(s, u["gm"], a.id, "TL"),
            "rm_gone": _member(s, u["rm_gone"], a.id, "RM", active=False),
        }

        def lead(branch: int | None, source: Source, assigned: str | None, rm: str | None) -> int:
            row = Lead(full_name="x", branch_id=branch, source_id=source.id, status="New",
                       assigned_to=u[assigned].user_id if assigned else None)  # fmt: skip
            s.add(row)
            s.flush()
            if rm is not None:
                s.add(LeadQualification(lead_id=row.id, rm_id=m[rm], branch_id=branch))
            return row.id

        leads = {
            "a_meta_cre_rm": lead(a.id, meta, "cre", "rm"),
            "a_meta_other_cre_rm_a2": lead(a.id, meta, "other_cre", "rm_a2"),
            "a_walk_in": lead(a.id, walk_in, None, None),
            "b_meta_cre_rm_b": lead(b.id, meta, "cre", "rm_b"),
            "b_walk_in": lead(b.id, walk_in, None, None),
            "no_branch": lead(None, meta, None, None),
            "a_meta_rm_gone": lead(a.id, meta, None, "rm_gone"),
        }
        roles.create_role(s, name="Finance", description="books", permissions=["leads.view_all"])
        s.commit()
        return World({k: v.user_id for k, v in u.items()}, m, leads, a.id, b.id)


ALL = {"a_meta_cre_rm", "a_meta_other_cre_rm_a2", "a_walk_in", "b_meta_cre_rm_b", "b_walk_in", "no_branch",
       "a_meta_rm_gone"}  # fmt: skip
BRANCH_A = {"a_meta_cre_rm", "a_meta_other_cre_rm_a2", "a_walk_in", "a_meta_rm_gone"}

# The designed answer: which leads each user sees.
EXPECTED: dict[str, set[str]] = {
    "admin": ALL,  # the legacy Admin saw no leads; here Admin sees everything
    "cre": {"a_meta_cre_rm", "b_meta_cre_rm_b"},  # assigned to them, in any branch; not a colleague's
    "other_cre": {"a_meta_other_cre_rm_a2"},
    "cre_tl": BRANCH_A,  # their branch only
    "cre_tl_group": ALL,  # no branch membership: the whole group
    "recep": {"a_walk_in"},  # walk-ins of her branch only
    "recep_b": {"b_walk_in"},
    "rm": {"a_meta_cre_rm"},  # handed to them (rm_id = their branch_members id)
    "rm_a2": {"a_meta_other_cre_rm_a2"},
    "rm_b": {"b_meta_cre_rm_b"},
    "rm_tl": {"a_meta_cre_rm", "a_meta_other_cre_rm_a2"},  # the active RMs of the branch they lead
    "gm": BRANCH_A,
    "gm_group": ALL,
    "dev": set(),
    "rm_gone": set(),  # an inactive membership gives nothing
    "finance": ALL,  # a role defined as data with leads.view_all
}


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_lead_scope_matrix(world: World, factory: sessionmaker[Session], username: str) -> None:
    with factory() as s:
        user = s.get(User, world.users[username])
        assert user is not None
        actor = actor_for_user(s, user)
        ids = set(s.execute(select(Lead.id).where(lead_scope(actor))).scalars())
        by_id = {v: k for k, v in world.leads.items()}
        assert {by_id[i] for i in ids} == EXPECTED[username]
        for name, lead_id in world.leads.items():
            visible = name in EXPECTED[username]
            assert can_see_lead(s, actor, lead_id) is visible, name
            if not visible:  # answered exactly as a lead that does not exist
                with pytest.raises(NotFoundError) as raised:
                    get_lead(s, actor, lead_id)
                assert str(raised.value) == f"lead {lead_id} not found"
            else:
                assert get_lead(s, actor, lead_id).id == lead_id


def test_permissions_are_data(world: World, factory: sessionmaker[Session]) -> None:
    """Revoking a view permission from a built-in role narrows it at once; Admin cannot be narrowed."""
    with factory() as s:
        roles.revoke(s, role="CRE", permissions=["leads.view_assigned"])
        user = s.get(User, world.users["cre"])
        assert user is not None
        assert not s.execute(select(Lead.id).where(lead_scope(actor_for_user(s, user)))).first()
        roles.grant(s, role="CRE", permissions=["leads.view_all"])
        assert can_see_lead(s, actor_for_user(s, user), world.leads["b_walk_in"])
        with pytest.raises(Exception, match="Admin always holds every permission"):
            roles.revoke(s, role="Admin", permissions=["leads.view_all"])
        s.rollback()


def test_api_key_roles_have_no_branches(world: World, factory: sessionmaker[Session]) -> None:
    """A key acting as CRE_TL (no membership) sees the group; one acting as CRE (no user) sees nothing."""
    with factory() as s:
        tl = Actor(role="CRE_TL", permissions=role_permissions(s, "CRE_TL"), via="api_key")
        cre = Actor(role="CRE", permissions=role_permissions(s, "CRE"), via="api_key")
        assert len(s.execute(select(Lead.id).where(lead_scope(tl))).all()) == len(ALL)
        assert s.execute(select(Lead.id).where(lead_scope(cre))).first() is None
        assert role_permissions(s, "NoSuchRole") == frozenset()


def test_who_may_record_an_enquiry(world: World, factory: sessionmaker[Session]) -> None:
    with factory() as s:

        def actor(name: str) -> Actor:
            user = s.get(User, world.users[name])
            assert user is not None
            return actor_for_user(s, user)

        authorize_intake(actor("cre"), source="meta", branch_id=None)
        authorize_intake(actor("recep"), source="walk_in", branch_id=world.branch_a)
        with pytest.raises(PermissionDenied, match="one of your branches"):
            authorize_intake(actor("recep"), source="walk_in", branch_id=world.branch_b)
        with pytest.raises(PermissionDenied, match="walk-ins only"):
            authorize_intake(actor("recep"), source="web_form", branch_id=world.branch_a)
        for name in ("rm", "rm_tl", "gm", "dev"):
            with pytest.raises(PermissionDenied, match=r"leads\.create"):
                authorize_intake(actor(name), source="walk_in", branch_id=world.branch_a)
