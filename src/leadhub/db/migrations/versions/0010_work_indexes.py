"""Indexes for the staff's lists, queues and the customer journey on a big `leads_master`.

Built CONCURRENTLY on PostgreSQL (no write lock on the table; an invalid leftover of a failed run is
replaced): owner + id for "my leads" pages, branch + id for branch scopes, the follow-up time (only
where set) for today's and overdue follow-ups, and the lead id on the activity and source-touch tables
that the journey and the activity endpoint read. On a PostgreSQL database with a big backfill still to
come, the three on leads_master are left to the backfill, which builds them when its leads phase ends.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

from leadhub.db import ddl

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_leads_master_assigned_to_id", "leads_master", ["assigned_to", "id"]),
    ("ix_leads_master_branch_id_id", "leads_master", ["branch_id", "id"]),
    ("ix_leads_master_next_followup_at", "leads_master", ["next_followup_at"]),
    ("ix_leads_logs_lead_id", "leads_logs", ["lead_id"]),
    ("ix_lead_sources_history_lead_id", "lead_sources_history", ["lead_id"]),
)


def upgrade() -> None:
    ddl.set_lock_timeout()
    for name, table, columns in INDEXES:
        # leads_master's are read by the staff lists only: on a database the backfill has still to write,
        # the backfill builds them when it has (ddl.create_index)
        ddl.create_index(name, table, columns, leave_to_backfill=table == "leads_master")


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
