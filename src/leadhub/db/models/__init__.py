"""ORM models: the adopted legacy tables (exact names and columns) and leadhub's own."""

from leadhub.db.models.assignment import AssignmentMember, AssignmentRule
from leadhub.db.models.auth import ApiKey, LoginFailure, RefreshToken, Role, RolePermission
from leadhub.db.models.backfill import (
    BackfillCustomerAttrs,
    BackfillCustomerKey,
    BackfillLeadLog,
    BackfillLog,
    BackfillRun,
    BackfillSetAside,
)
from leadhub.db.models.customers import Customer
from leadhub.db.models.intake import IntakeEvent, IntakeStatus, SourceChannel
from leadhub.db.models.knowlarity import Call, CallbackStatus, CallbackTask, KnowlarityNumber
from leadhub.db.models.legacy import (
    Branch,
    BranchMember,
    Lead,
    LeadLog,
    LeadQualification,
    LeadSourceHistory,
    Source,
    User,
)
from leadhub.db.models.meta import MetaForm, MetaPage
from leadhub.db.models.reasons import LeadReason
from leadhub.db.models.sync import SyncCheckpoint

__all__ = [
    "ApiKey",
    "AssignmentMember",
    "AssignmentRule",
    "BackfillCustomerAttrs",
    "BackfillCustomerKey",
    "BackfillLeadLog",
    "BackfillLog",
    "BackfillRun",
    "BackfillSetAside",
    "Branch",
    "BranchMember",
    "Call",
    "CallbackStatus",
    "CallbackTask",
    "Customer",
    "IntakeEvent",
    "IntakeStatus",
    "KnowlarityNumber",
    "Lead",
    "LeadLog",
    "LeadQualification",
    "LeadReason",
    "LeadSourceHistory",
    "LoginFailure",
    "MetaForm",
    "MetaPage",
    "RefreshToken",
    "Role",
    "RolePermission",
    "Source",
    "SourceChannel",
    "SyncCheckpoint",
    "User",
]
