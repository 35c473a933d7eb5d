"""Knowlarity pushes in batches: `leadhub_ingest_calls(jsonb array)`, one transaction for many calls.

Each push was a transaction of its own: a round trip and a commit (a WAL flush) on top of its work.
The webhook now gathers the pushes that arrive while earlier ones are being written
(integrations/knowlarity/batching.py) and sends them as one statement:

- `leadhub_ingest_calls(p)` runs `leadhub_ingest_call` for each element of the array in a
  subtransaction of its own. A value the database refuses (a constraint, a limit) fails that call
  alone: its inbox row is kept as failed with the database's message, its answer says failed, and
  the rest of the batch commits. Deadlocks and serialization failures are not caught: they abort
  the whole statement, which the caller sends again (the calls are idempotent).

An answered call closes its customer's open callback tasks (`UPDATE callback_tasks ... WHERE customer_id
= $1 AND status = 'open'`, in `leadhub_ingest_call`). Under the webhook benchmark, with statistics that
lag behind a growing table, that UPDATE ran as a BitmapAnd of the open-task partial unique index on
lead_id (every open task: 3,719 rows after 8 seconds, more each second) and the customer index:
about 0.05 ms per answered call and growing (auto_explain, nested statements). The partial index
`ix_callback_tasks_open_customer` (customer_id, open tasks only) answers it alone: 0.003 ms per
answered call. Built CONCURRENTLY; the function is unchanged.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadhub.db import ddl

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# No "%" in the body: the offline script (`leadhub db sql`) escapes it (see revision 0006).

# One subtransaction per call; the answers in the order of the array. A refused call's inbox row is
# written as leadhub_process_event writes a rejected one, under the same advisory lock (the failed
# subtransaction released it). If the event is in the inbox already, that row is its answer.
INGEST_CALLS = """
CREATE OR REPLACE FUNCTION leadhub_ingest_calls(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_item jsonb;
  v_answers jsonb[] := '{}';
  v_answer jsonb;
  v_error text;
  v_state text;
  v_now timestamptz;
  v_event_id bigint;
BEGIN
  FOR v_item IN SELECT value FROM jsonb_array_elements(p) LOOP
    BEGIN
      v_answer := leadhub_ingest_call(v_item);
    EXCEPTION
      WHEN deadlock_detected OR serialization_failure OR lock_not_available THEN
        RAISE;  -- the whole batch is sent again
      WHEN others THEN
        GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        v_error := 'the database refused a value (' || v_state || '): ' || v_error;
        v_now := clock_timestamp();
        PERFORM pg_advisory_xact_lock(hashtext('leadhub.intake_events'),
                                      hashtext((v_item->>'source') || '/' || (v_item->>'external_id')));
        INSERT INTO intake_events (source, external_id, status, outcome, reason, intake, raw_payload,
                                   lead_id, customer_id, attempts, received_at, processed_at)
        VALUES (v_item->>'source', v_item->>'external_id', 'failed', NULL, v_error, v_item->'intake',
                nullif(v_item->'raw_payload', 'null'::jsonb), NULL, NULL, 1, v_now, v_now)
        ON CONFLICT (source, external_id) DO NOTHING
        RETURNING id INTO v_event_id;
        IF v_event_id IS NULL THEN
          SELECT id INTO v_event_id FROM intake_events
           WHERE source = v_item->>'source' AND external_id = v_item->>'external_id';
        END IF;
        v_answer := jsonb_build_object('status', 'failed', 'event_id', v_event_id, 'reason', v_error,
                                       'call_id', NULL, 'number_mapped', false, 'refused', true);
    END;
    v_answers := array_append(v_answers, v_answer);
  END LOOP;
  RETURN to_jsonb(v_answers);
END
$fn$;
"""


def upgrade() -> None:
    ddl.set_lock_timeout()
    ddl.create_index(
        "ix_callback_tasks_open_customer", "callback_tasks", ["customer_id"], where="status = 'open'"
    )
    if op.get_context().dialect.name != "postgresql":
        return  # SQLite runs the Python path only
    op.execute(sa.text(INGEST_CALLS))


def downgrade() -> None:
    """Back to revision 0013: the batch function and the index go; 0012's functions were never changed."""
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS leadhub_ingest_calls(jsonb)")
    ddl.drop_index("ix_callback_tasks_open_customer")
