"""Staff users: the adopted legacy `users` table, with branches through legacy `branch_members`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leadhub.auth.passwords import hash_password
from leadhub.auth.roles import get_role
from leadhub.db.dialect import upsert
from leadhub.db.models import Branch, BranchMember, RefreshToken, User
from leadhub.errors import ConflictError, NotFoundError, ValidationFailed

BRANCH_ROLES = ("TL", "RM", "CRE", "Receptionist")  # the legacy CHECK on branch_members.role
# The per-branch role a user gets when `--branch ID` names none.
DEFAULT_BRANCH_ROLE = {
    "CRE": "CRE",
    "CRE_TL": "TL",
    "RM": "RM",
    "RM_TL": "TL",
    "Receptionist": "Receptionist",
}


@dataclass(frozen=True)
class BranchGrant:
    branch_id: int
    role: str | None = None  # None: DEFAULT_BRANCH_ROLE of the user's role


@dataclass(frozen=True)
class UserView:
    user_id: int
    username: str
    role: str
    full_name: str | None
    email: str | None
    active: bool
    branches: list[dict[str, object]]


def get_user(session: Session, username: str) -> User:
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise NotFoundError(f"no user named {username!r}")
    return user


def create_user(
    session: Session,
    *,
    username: str,
    role: str,
    password: str,
    full_name: str | None = None,
    email: str | None = None,
    phone_number: str | None = None,
    branches: list[BranchGrant] | None = None,
) -> User:
    username = username.strip()
    if not username or len(username) > 100 or any(c.isspace() for c in username):
        raise ValidationFailed("a username is 1-100 characters with no spaces")
    get_role(session, role)
    password_hash = hash_password(password)
    created = session.execute(
        upsert(session, User)
        .values(
            username=username,
            role=role,
            password_hash=password_hash,
            full_name=full_name,
            email=email,
            phone_number=phone_number,
            status=True,
        )
        .on_conflict_do_nothing()
        .returning(User.user_id)
    ).first()
    if created is None:
        raise ConflictError(f"a user named {username!r} already exists")
    for grant in branches or []:
        add_membership(session, user_id=created.user_id, user_role=role, grant=grant)
    user = session.get(User, created.user_id)
    assert user is not None
    return user


def add_membership(session: Session, *, user_id: int, user_role: str, grant: BranchGrant) -> BranchMember:
    branch_role = grant.role or DEFAULT_BRANCH_ROLE.get(user_role)
    if branch_role not in BRANCH_ROLES:
        raise ValidationFailed(
            f"say the role at branch {grant.branch_id} as ID:ROLE, ROLE one of {', '.join(BRANCH_ROLES)}"
        )
    if session.get(Branch, grant.branch_id) is None:
        raise NotFoundError(f"no branch with id {grant.branch_id}")
    existing = session.execute(
        select(BranchMember)
        .where(
            BranchMember.user_id == user_id,
            BranchMember.branch_id == grant.branch_id,
            BranchMember.role == branch_role,
            BranchMember.is_active.is_(True),
        )
        .order_by(BranchMember.id)
        .limit(1)
    ).scalar_one_or_none()
    if existing is not None:  # the legacy app's duplicate memberships needed cleanup scripts
        return existing
    user = session.get(User, user_id)
    member = BranchMember(
        branch_id=grant.branch_id, user_id=user_id, role=branch_role, is_active=True,
        contact_name=user.full_name or user.username if user else None,
    )  # fmt: skip
    session.add(member)
    session.flush()
    return member


def list_users(session: Session, *, user_id: int | None = None) -> list[UserView]:
    query = select(User).order_by(User.username)
    if user_id is not None:
        query = query.where(User.user_id == user_id)
    users = session.execute(query).scalars().all()
    members: dict[int, list[dict[str, object]]] = {}
    rows = session.execute(
        select(BranchMember.user_id, BranchMember.branch_id, BranchMember.role, Branch.name)
        .join(Branch, Branch.id == BranchMember.branch_id)
        .where(
            BranchMember.is_active.is_(True),
            BranchMember.user_id.is_not(None) if user_id is None else BranchMember.user_id == user_id,
        )
        .order_by(BranchMember.id)
    ).all()
    for r in rows:
        members.setdefault(r.user_id, []).append({"branch_id": r.branch_id, "branch": r.name, "role": r.role})
    return [
        UserView(
            user_id=u.user_id,
            username=u.username,
            role=u.role,
            full_name=u.full_name,
            email=u.email,
            active=bool(u.status),
            branches=members.get(u.user_id, []),
        )
        for u in users
    ]


def revoke_user_sessions(session: Session, *, user_id: int, now: datetime | None = None) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now or datetime.now(UTC))
    )


def disable_user(session: Session, *, username: str) -> User:
    """Blocks login (legacy `status = false`, which the old app also honours) and ends every session."""
    user = get_user(session, username)
    user.status = False
    user.updated_at = datetime.now(UTC)
    revoke_user_sessions(session, user_id=user.user_id)
    session.flush()
    return user


def set_password(session: Session, *, username: str, password: str) -> User:
    """A new argon2 hash; every existing session of the user ends (the usual reason is a leaked password)."""
    user = get_user(session, username)
    user.password_hash = hash_password(password)
    user.updated_at = datetime.now(UTC)
    revoke_user_sessions(session, user_id=user.user_id)
    session.flush()
    return user


def get_user_by_id(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    return user


def view_user(session: Session, user_id: int) -> UserView:
    return next(u for u in list_users(session, user_id=user_id))


def update_user(
    session: Session,
    *,
    user_id: int,
    role: str | None = None,
    full_name: str | None = None,
    email: str | None = None,
    active: bool | None = None,
) -> User:
    """Change a user's role, name, e-mail or active flag. A role change or a disable ends every session
    of the user at once, so the new permissions (or none) apply to the next request, not the next login."""
    user = get_user_by_id(session, user_id)
    ends_sessions = False
    if role is not None and role != user.role:
        get_role(session, role)
        user.role = role
        ends_sessions = True
    if full_name is not None:
        user.full_name = full_name.strip() or None
    if email is not None:
        user.email = email.strip() or None
    if active is not None and active != bool(user.status):
        user.status = active
        ends_sessions = ends_sessions or not active
    user.updated_at = datetime.now(UTC)
    if ends_sessions:
        revoke_user_sessions(session, user_id=user.user_id)
    session.flush()
    return user


def remove_membership(session: Session, *, user_id: int, branch_id: int) -> int:
    """End the user's active memberships of a branch. The legacy rows stay (is_active = false): leads
    handed to an RM name that row, and history must keep pointing at it. Returns how many ended."""
    get_user_by_id(session, user_id)
    done = session.execute(
        update(BranchMember)
        .where(
            BranchMember.user_id == user_id,
            BranchMember.branch_id == branch_id,
            BranchMember.is_active.is_(True),
        )
        .values(is_active=False, updated_at=datetime.now(UTC))
    )
    ended = int(done.rowcount)  # type: ignore[attr-defined]
    if ended == 0:
        raise NotFoundError(f"user {user_id} is not an active member of branch {branch_id}")
    return ended
