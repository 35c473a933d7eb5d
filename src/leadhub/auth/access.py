"""Record-level access, shared by the API, the pages and the CLI.

An `Actor` is who is acting: a user (from an access token), an integration (from an API key) or the
operator's admin key. Which leads it sees is the union of the view permissions its role holds,
expressed as one SQL where-clause (`lead_scope`), so lists filter in the database and a single
record the actor may not see is simply not found (404), never "forbidden".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, String, and_, cast, exists, false, func, or_, select, true
from sqlalchemy.orm import Session

from leadhub.auth.permissions import ADMIN, ALL_PERMISSIONS, Permission
from leadhub.db.models import (
    BranchMember,
    Lead,
    LeadQualification,
    RefreshToken,
    RolePermission,
    Source,
    SourceChannel,
    User,
)
from leadhub.errors import NotFoundError, PermissionDenied

WALK_IN = "walk_in"


@dataclass(frozen=True)
class Membership:
    """An active legacy `branch_members` row: the role here is the per-branch one (TL/RM/CRE/Receptionist)."""

    member_id: int
    branch_id: int
    role: str


@dataclass(frozen=True)
class Actor:
    role: str
    permissions: frozenset[str]
    user_id: int | None = None
    username: str | None = None
    memberships: tuple[Membership, ...] = ()
    family_id: str | None = None  # the login (refresh-token family) an access token belongs to
    api_key_name: str | None = None
    via: str = "token"  # token | api_key | admin_key

    def has(self, permission: Permission | str) -> bool:
        return str(permission) in self.permissions

    def require(self, permission: Permission) -> None:
        if not self.has(permission):
            raise PermissionDenied(f"your role ({self.role}) lacks the permission {permission.value}")

    @property
    def branch_ids(self) -> tuple[int, ...]:
        return tuple(sorted({m.branch_id for m in self.memberships}))

    def member_ids(self, branch_role: str) -> tuple[int, ...]:
        return tuple(m.member_id for m in self.memberships if m.role == branch_role)

    def branches_as(self, branch_role: str) -> tuple[int, ...]:
        return tuple(sorted({m.branch_id for m in self.memberships if m.role == branch_role}))


def role_permissions(session: Session, role: str) -> frozenset[str]:
    """Admin holds every permission whatever the table says; an unknown role holds none."""
    if role == ADMIN:
        return ALL_PERMISSIONS
    rows = session.execute(select(RolePermission.permission).where(RolePermission.role == role)).scalars()
    return frozenset(rows)


def actor_for_user(session: Session, user: User, *, family_id: str | None = None) -> Actor:
    """The Actor of a user row (role permissions and active memberships), whatever its status."""
    row = _actor_row(session, user_id=user.user_id, family_id=family_id)
    assert row is not None
    return _actor(row, family_id)


def actor_for_login(session: Session, *, user_id: int, family_id: str) -> tuple[Actor | None, bool]:
    """The Actor of an access token in one statement (every API request pays for it): the user, whether
    the login is still live, the role's permissions and the active memberships. Returns (None, _) when
    the user is missing or disabled, else the actor; and whether the login is live."""
    row = _actor_row(session, user_id=user_id, family_id=family_id)
    if row is None:
        return None, True
    if not row.status:
        return None, bool(row.live)
    return _actor(row, family_id), bool(row.live)


def _actor_row(session: Session, *, user_id: int, family_id: str | None) -> Row[Any] | None:
    live = exists().where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
    grants = (
        select(func.aggregate_strings(RolePermission.permission, ","))
        .where(RolePermission.role == User.role)
        .scalar_subquery()
    )
    member = (
        cast(BranchMember.id, String) + ":" + cast(BranchMember.branch_id, String) + ":" + BranchMember.role
    )
    members = (
        select(func.aggregate_strings(member, ","))
        .where(BranchMember.user_id == User.user_id, BranchMember.is_active.is_(True))
        .scalar_subquery()
    )
    return session.execute(
        select(User.user_id, User.username, User.role, User.status, live.label("live"),
               grants.label("grants"), members.label("members"))
        .where(User.user_id == user_id)
    ).first()  # fmt: skip


def _actor(row: Row[Any], family_id: str | None) -> Actor:
    parts = sorted((p.split(":") for p in (row.members or "").split(",") if p), key=lambda p: int(p[0]))
    return Actor(
        role=row.role,
        permissions=ALL_PERMISSIONS
        if row.role == ADMIN
        else frozenset(filter(None, (row.grants or "").split(","))),
        user_id=row.user_id,
        username=row.username,
        memberships=tuple(Membership(member_id=int(i), branch_id=int(b), role=r) for i, b, r in parts),
        family_id=family_id,
    )


def admin_key_actor() -> Actor:
    return Actor(role=ADMIN, permissions=ALL_PERMISSIONS, via="admin_key", username="admin-api-key")


def _walk_in_sources() -> ColumnElement[bool]:
    ids = (
        select(Source.id)
        .where(Source.source_type == WALK_IN)
        .union(select(SourceChannel.source_id).where(SourceChannel.channel == WALK_IN))
    )
    return Lead.source_id.in_(ids)


def _handed_to(member_ids: ColumnElement[bool]) -> ColumnElement[bool]:
    # Alone in a where-clause PostgreSQL makes this a semi-join (one index probe per lead scanned);
    # inside an OR (a scope of several arms) a hashed subplan: the set is built once per query.
    return Lead.id.in_(select(LeadQualification.lead_id).where(member_ids))


def lead_scope(actor: Actor) -> ColumnElement[bool]:
    """A where-clause on `leads_master` selecting exactly the leads this actor may see."""
    if actor.has(Permission.LEADS_VIEW_ALL):
        return true()
    clauses: list[ColumnElement[bool]] = []
    if actor.has(Permission.LEADS_VIEW_BRANCH):
        if not actor.memberships:
            return true()  # a manager with no branch is the group's (legacy CRE_TL): every lead
        clauses.append(Lead.branch_id.in_(actor.branch_ids))
    if actor.has(Permission.LEADS_VIEW_ASSIGNED) and actor.user_id is not None:
        clauses.append(Lead.assigned_to == actor.user_id)
    if actor.has(Permission.LEADS_VIEW_HANDED) and actor.member_ids("RM"):
        # legacy rm.service: the lead is the RM's when rm_id is one of the RM's own branch_members ids
        clauses.append(_handed_to(LeadQualification.rm_id.in_(actor.member_ids("RM"))))
    if actor.has(Permission.LEADS_VIEW_TEAM) and actor.branches_as("TL"):
        team = select(BranchMember.id).where(
            BranchMember.role == "RM",
            BranchMember.is_active.is_(True),
            BranchMember.branch_id.in_(actor.branches_as("TL")),
        )
        clauses.append(_handed_to(LeadQualification.rm_id.in_(team)))
    if actor.has(Permission.WALKINS_VIEW_BRANCH) and actor.memberships:
        clauses.append(and_(Lead.branch_id.in_(actor.branch_ids), _walk_in_sources()))
    return or_(*clauses) if clauses else false()


def works_on(actor: Actor) -> ColumnElement[bool]:
    """The leads this actor works personally: assigned to them, or handed to one of their RM rows.

    Always used within `lead_scope(actor)`. An actor whose only scope is the leads handed to them (an
    RM) works exactly their scope, so nothing is added: repeating the handed condition, or OR-ing in
    `assigned to me` (which that scope hides anyway), makes PostgreSQL build the RM's whole handed set,
    or misjudge the rows, instead of walking the leads newest first (tens of ms at 1,000,000 leads)."""
    scopes = {p for p in actor.permissions if p.startswith(("leads.view_", "walkins.view_"))}
    if scopes == {Permission.LEADS_VIEW_HANDED.value}:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if actor.user_id is not None:
        clauses.append(Lead.assigned_to == actor.user_id)
    if actor.member_ids("RM"):
        clauses.append(_handed_to(LeadQualification.rm_id.in_(actor.member_ids("RM"))))
    return or_(*clauses) if clauses else false()


def can_see_lead(session: Session, actor: Actor, lead_id: int) -> bool:
    return bool(session.execute(select(exists().where(Lead.id == lead_id, lead_scope(actor)))).scalar())


def get_lead(session: Session, actor: Actor, lead_id: int) -> Lead:
    """The lead if this actor may see it; otherwise not found, exactly as if it did not exist."""
    lead = session.execute(select(Lead).where(Lead.id == lead_id, lead_scope(actor))).scalar_one_or_none()
    if lead is None:
        raise NotFoundError(f"lead {lead_id} not found")
    return lead


def authorize_intake(actor: Actor, *, source: str, branch_id: int | None) -> None:
    """`leads.create` records any enquiry; `walkins.create` only a walk-in at one of the actor's branches."""
    if actor.has(Permission.LEADS_CREATE):
        return
    if actor.has(Permission.WALKINS_CREATE):
        if source != WALK_IN:
            raise PermissionDenied(f"your role ({actor.role}) may record walk-ins only, not {source} leads")
        if branch_id is None or branch_id not in actor.branch_ids:
            raise PermissionDenied("a walk-in must name one of your branches (branch_id)")
        return
    raise PermissionDenied(f"your role ({actor.role}) lacks the permission leads.create")


def authorize_handover(actor: Actor, *, branch_id: int | None = None) -> None:
    """Who hands a lead to an RM: `leads.assign`, or the walk-in desk (`walkins.create`) for a lead at
    one of its own branches. Without `branch_id`, only whether the role may hand over at all."""
    if actor.has(Permission.LEADS_ASSIGN):
        return
    if not actor.has(Permission.WALKINS_CREATE):
        raise PermissionDenied(f"your role ({actor.role}) may not hand leads to an RM (needs leads.assign)")
    if branch_id is not None and branch_id not in actor.branch_ids:
        raise PermissionDenied("the walk-in desk hands over leads of its own branches only")


def require_can_grant(
    session: Session, actor: Actor, *, role: str | None = None, permissions: frozenset[str] = frozenset()
) -> None:
    """No one hands out more than they hold: a user manager may give a user or an API key a role, and a
    role manager may grant permissions, only within their own permissions (Admin holds them all)."""
    # Unknown names are left to the roles service, which answers them as invalid input.
    wanted = (set(permissions) & ALL_PERMISSIONS) | (
        role_permissions(session, role) if role is not None else set()
    )
    beyond = sorted(wanted - actor.permissions)
    if beyond:
        what = f"the role {role}" if role is not None else "these permissions"
        raise PermissionDenied(
            f"{what} would give permissions your role ({actor.role}) does not hold: {', '.join(beyond)}"
        )
