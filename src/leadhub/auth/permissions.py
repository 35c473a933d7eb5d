"""The permission vocabulary and the built-in roles. Pure data: imports nothing from the database.

Built-in roles are the legacy ones (../shared/legacy/legacy-app.md §4.1). Their permission sets are
seeded into `role_permissions` by revision 0007 and can then be changed as data, except Admin, which
always holds every permission (the legacy bug was an Admin who could not see leads; an Admin who
revoked their own `users.manage` could not undo it).
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    # Which leads an actor sees: the union of the scopes it holds (see auth/access.py).
    LEADS_VIEW_ALL = "leads.view_all"
    LEADS_VIEW_BRANCH = "leads.view_branch"  # leads of the actor's branches; all if it has none
    LEADS_VIEW_TEAM = "leads.view_team"  # leads handed to the RMs of the branches the actor leads
    LEADS_VIEW_ASSIGNED = "leads.view_assigned"  # leads_master.assigned_to = the actor
    LEADS_VIEW_HANDED = "leads.view_handed"  # leads_qualification.rm_id = one of the actor's RM rows
    WALKINS_VIEW_BRANCH = "walkins.view_branch"  # walk-in leads of the actor's branches
    # What an actor may do.
    LEADS_CREATE = "leads.create"
    LEADS_UPDATE = "leads.update"
    LEADS_ASSIGN = "leads.assign"
    WALKINS_CREATE = "walkins.create"
    CUSTOMERS_SEARCH_PHONE = "customers.search_phone"
    BOOKINGS_APPROVE = "bookings.approve"
    USERS_VIEW = "users.view"
    USERS_MANAGE = "users.manage"
    ROLES_MANAGE = "roles.manage"
    APIKEYS_MANAGE = "apikeys.manage"
    CONFIG_MANAGE = "config.manage"
    SYSTEM_VIEW = "system.view"


ALL_PERMISSIONS: frozenset[str] = frozenset(p.value for p in Permission)

ADMIN = "Admin"

P = Permission
BUILT_IN_ROLES: dict[str, tuple[str, frozenset[Permission]]] = {
    ADMIN: ("Everything, including every lead", frozenset(Permission)),
    "CRE": (
        "Call-centre executive: works the leads assigned to them",
        frozenset({P.LEADS_VIEW_ASSIGNED, P.LEADS_CREATE, P.LEADS_UPDATE}),
    ),
    "CRE_TL": (
        "CRE team lead: every lead of their branches (all leads without a branch), assigns",
        frozenset(
            {
                P.LEADS_VIEW_BRANCH,
                P.LEADS_CREATE,
                P.LEADS_UPDATE,
                P.LEADS_ASSIGN,
                P.USERS_VIEW,
                P.CONFIG_MANAGE,
            }
        ),
    ),
    "Receptionist": (
        "Takes walk-ins at her branch and finds customers by phone",
        frozenset({P.WALKINS_VIEW_BRANCH, P.WALKINS_CREATE, P.CUSTOMERS_SEARCH_PHONE}),
    ),
    "RM": (
        "Relationship manager: the leads handed to them",
        frozenset({P.LEADS_VIEW_HANDED, P.LEADS_UPDATE}),
    ),
    "RM_TL": (
        "Branch team lead: the leads of the RMs in the branches they lead",
        frozenset({P.LEADS_VIEW_TEAM, P.LEADS_UPDATE, P.LEADS_ASSIGN, P.USERS_VIEW}),
    ),
    "GM": (
        "General manager: every lead of their branches (all leads without a branch), approves bookings",
        frozenset({P.LEADS_VIEW_BRANCH, P.BOOKINGS_APPROVE, P.USERS_VIEW}),
    ),
    "Developer": (
        "User administration and system logs; no leads",
        frozenset({P.USERS_VIEW, P.USERS_MANAGE, P.SYSTEM_VIEW}),
    ),
}
