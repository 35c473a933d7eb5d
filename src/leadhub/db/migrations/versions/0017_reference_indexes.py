"""Indexes on the two references that had none: `intake_events.customer_id` and `calls.intake_event_id`.

Deleting a customer makes PostgreSQL check every table that references customers for rows that still
point at it, one query per deleted row; without an index on the referencing column each check reads
the whole table. `--undo` deletes every customer the backfill made, and the repair merge deletes the
customers it merges: at 200,000 legacy leads undo's last step took about 8 minutes, almost all of it
these checks reading `intake_events` (and its dead rows, the legacy ids undo had just removed) once
per customer. Removing inbox rows checks `calls` the same way. Both indexes are partial (only rows
that have a reference), built CONCURRENTLY, so no writer waits.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29
"""

from __future__ import annotations

from leadhub.db import ddl

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_intake_events_customer_id", "intake_events", "customer_id"),
    ("ix_calls_intake_event_id", "calls", "intake_event_id"),
]


def upgrade() -> None:
    ddl.set_lock_timeout()
    for name, table, column in INDEXES:
        ddl.create_index(name, table, [column], where=f"{column} IS NOT NULL")


def downgrade() -> None:
    for name, _, _ in INDEXES:
        ddl.drop_index(name)
