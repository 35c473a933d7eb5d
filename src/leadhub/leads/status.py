"""What an open lead is, defined once and used by every channel rule and query.

The legacy app spelled statuses five ways (../shared/legacy/legacy-app.md §1.15); `"IS_LOST"` is its
only reliable lost signal (NULL means not lost), and a lost lead can carry any status string.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, func, not_, or_

from leadhub.db.models import Lead

NEW = "New"
# Lower-cased legacy statuses that end a lead's story, whatever "IS_LOST" says.
CLOSED_STATUSES = (
    "won",
    "closed",
    "closed_due_to_sale_elsewhere",
    "booked-retail",
    "lost",
    "disqualified",
    "unqualified",
)


def open_lead_clause() -> ColumnElement[bool]:
    """SQL: the lead is neither lost nor won/closed."""
    status = func.lower(Lead.status)
    return and_(
        or_(Lead.is_lost.is_(None), Lead.is_lost == false()),
        or_(Lead.status.is_(None), and_(status.not_in(CLOSED_STATUSES), not_(status.like("lost%")))),
    )


def is_open(status: str | None, is_lost: bool | None) -> bool:
    """The same rule in Python, for objects already loaded."""
    if is_lost:
        return False
    if status is None:
        return True
    lowered = status.lower()
    return lowered not in CLOSED_STATUSES and not lowered.startswith("lost")
