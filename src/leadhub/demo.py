"""Believable demo data for a first run: branches, staff of every role, and a few hundred enquiries
in the messy phone formats real Indian data has, many from repeat customers across branches."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadhub.auth.passwords import hash_password
from leadhub.config import LeadPolicy
from leadhub.db.models import AssignmentRule, Branch, BranchMember, Lead, User
from leadhub.leads.assignment import add_member
from leadhub.leads.intake import Channel, Intake, IntakeOutcome, ingest

BRANCHES = [
    ("Pune Baner", "Pune"),
    ("Pune Hadapsar", "Pune"),
    ("Mumbai Andheri", "Mumbai"),
    ("Mumbai Thane", "Mumbai"),
    ("Bengaluru Whitefield", "Bengaluru"),
    ("Delhi Dwarka", "Delhi"),
]
FIRST = ["Aarav", "Vivaan", "Aditya", "Ananya", "Diya", "Ishaan", "Kavya", "Rohan", "Saanvi", "Arjun",
         "Priya", "Rahul", "Sneha", "Vikram", "Meera", "Karan", "Pooja", "Nikhil", "Riya", "Siddharth"]  # fmt: skip
LAST = ["Sharma", "Patel", "Iyer", "Khan", "Das", "Reddy", "Nair", "Gupta", "Joshi", "Kulkarni"]
STAFF_ROLES = ["Admin", "GM", "CRE_TL", "CRE", "CRE", "CRE", "RM_TL", "RM", "RM", "Receptionist", "Developer"]
MEMBER_ROLE = {"CRE": "CRE", "RM": "RM", "RM_TL": "TL", "Receptionist": "Receptionist"}


@dataclass(frozen=True, slots=True)
class DemoReport:
    branches: int
    users: int
    intakes: int
    outcomes: dict[str, int]
    logins: dict[str, str]  # a username of each main role
    password: str  # every demo user's, made for this database and printed once by `leadhub demo`


def _messy(mobile: str, rng: random.Random) -> str:
    """One person's number the way different legacy paths and people write it."""
    style = rng.randrange(9)
    return [
        mobile,
        "91" + mobile,
        "0" + mobile,
        "+91 " + mobile[:5] + " " + mobile[5:],
        "+91-" + mobile,
        "0091 " + mobile,
        "(+91) " + mobile[:5] + "-" + mobile[5:],
        "+91" + mobile,
        mobile[:5] + " " + mobile[5:],
    ][style]


def is_empty(session: Session) -> bool:
    return session.execute(select(func.count()).select_from(Lead)).scalar_one() == 0


def load_demo(session: Session, *, leads: int = 300, seed: int = 7, region: str = "IN") -> DemoReport:
    rng = random.Random(seed)
    branches = [Branch(name=name, city=city) for name, city in BRANCHES]
    session.add_all(branches)
    session.flush()
    users = []
    password = secrets.token_urlsafe(12)  # one for every demo user, shown once; real users set their own
    password_hash = hash_password(password)  # hashed once: argon2 is slow on purpose
    for branch in branches:
        for n, role in enumerate(STAFF_ROLES):
            first = rng.choice(FIRST)
            user = User(
                username=f"{role.lower()}.{first.lower()}.{branch.id}.{n}",
                role=role,
                full_name=f"{first} {rng.choice(LAST)}",
                status=True,
                password_hash=password_hash,
            )
            users.append(user)
            session.add(user)
            session.flush()
            if role in MEMBER_ROLE:
                session.add(BranchMember(branch_id=branch.id, user_id=user.user_id, role=MEMBER_ROLE[role],
                                         contact_name=user.full_name))  # fmt: skip
    # New leads of each branch rotate among its CREs, as a site would set it up (docs/assignment.md).
    for branch in branches:
        rule = AssignmentRule(name=f"{branch.name}: every channel", branch_id=branch.id)
        session.add(rule)
        session.flush()
        for user in users:
            if user.role == "CRE" and user.username.split(".")[2] == str(branch.id):
                add_member(session, rule_id=rule.id, user_id=user.user_id)
    people = [
        (str(rng.randint(6_000_000_000, 9_999_999_999)), f"{rng.choice(FIRST)} {rng.choice(LAST)}")
        for _ in range(max(1, leads * 3 // 5))
    ]
    outcomes: dict[str, int] = {}
    start = datetime.now(UTC) - timedelta(days=30)
    for i in range(leads):
        mobile, name = rng.choice(people)
        channel = rng.choice(list(Channel))
        branch = rng.choice(branches)
        when = start + timedelta(minutes=i * 140 + rng.randrange(60))
        phone = _messy(mobile, rng)
        if rng.random() < 0.03:
            phone = rng.choice(["", "98765", "call me", mobile[:6]])  # kept in the inbox as failed
        intake = Intake(
            source=channel,
            phone=phone,
            external_id=f"demo-{channel.value}-{i}"
            if channel in (Channel.KNOWLARITY, Channel.META)
            else None,
            name=None if channel is Channel.KNOWLARITY else name,
            city=branch.city if rng.random() < 0.5 else None,
            branch_id=None if channel is Channel.META and rng.random() < 0.3 else branch.id,
            occurred_at=when,
            raw_payload={"demo": True, "channel": channel.value, "phone": phone},
        )
        result = ingest(session, intake, region=region, policy=LeadPolicy.ATTACH)
        outcomes[result.status.value] = outcomes.get(result.status.value, 0) + 1
    assert IntakeOutcome.CREATED.value in outcomes
    logins = {
        role: next(u.username for u in users if u.role == role)
        for role in ("Admin", "CRE", "CRE_TL", "Receptionist")
    }
    return DemoReport(branches=len(branches), users=len(users), intakes=leads, outcomes=outcomes, logins=logins,
                      password=password)  # fmt: skip
