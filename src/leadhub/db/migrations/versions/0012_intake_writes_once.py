"""The server-side intake writes each row once: the inbox row final, a new customer unlocked, a call's
lead with its follow-up and source from the start.

Revision 0006 inserted the inbox row as `pending` (its unique key was the lock against a concurrent
copy of the same event), then updated it to its outcome: two heap tuples and, since the status is
indexed, two sets of index entries and two rounds of foreign-key checks per enquiry. It also locked
the customer row it had just inserted, and a call that made a lead then rewrote that lead's row for
the number's source and for the missed call's follow-up (`next_followup_at` is indexed, so not a HOT
update). Measured under pgbench, those rewrites were most of the function's cost beyond the anchor.

Now:

- `leadhub_ingest` takes a transaction-scoped advisory lock on (source, external id) first: a
  concurrent copy of the same event waits there until the first commits, then finds its row and
  answers "duplicate", as the unique key made it do before. A new event's row is inserted once, at
  the end, with its outcome (`leadhub_process_event(id, p, p_new => true)`). A writer that does not
  take the lock (none does on PostgreSQL today) and inserts the same key in between makes the insert
  raise serialization_failure (40001): nothing is kept and the caller sends the statement again.
- Every delivery draws an event id, as the Python path's INSERT … ON CONFLICT does, so both paths
  number their events alike (tests/leads/test_server_side.py compares them row for row).
- A customer the intake has just inserted is not locked again: no other transaction can see it
  before the commit, and a concurrent first call from the same number waits on its unique key.
- `leadhub_ingest_call` hands the intake what a new lead of this call carries: the number's source
  (`new_lead_source_id`) and, for a missed call, the follow-up due time (`followup_due`, set unless
  an answered call of that customer started at or after the missed one, the rule the callback task
  follows), so the lead row is written once.

- `leadhub_lead_is_open` is the same rule in PL/pgSQL. As an SQL function with a FROM clause and a
  subquery it could not be inlined, and PostgreSQL 15 parses and plans such a function's body again in
  every statement that calls it: about 0.5 ms for a repeat caller's open-lead look-up (auto_explain,
  single client). PL/pgSQL keeps its plans for the session.

Replay (`leadhub_process_event(id, p)`, an event already in the inbox) still updates the row.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# No "%" in the bodies: the offline script (`leadhub db sql`) escapes it (see revision 0006).

# leads.status.open_lead_clause, for one row, as revision 0006 defines it, in PL/pgSQL (plans kept).
LEAD_IS_OPEN = """
CREATE OR REPLACE FUNCTION leadhub_lead_is_open(p_lead bigint, status text, is_lost boolean, is_qualified boolean)
RETURNS boolean LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  s text := lower(trim(coalesce(status, '')));
BEGIN
  IF coalesce(is_lost, false)
     OR s IN ('booked-retail', 'closed', 'closed_due_to_sale_elsewhere', 'disqualified', 'lost', 'unqualified', 'won')
     OR starts_with(s, 'disqualified') OR starts_with(s, 'lost') OR starts_with(s, 'unqualified') THEN
    RETURN false;
  END IF;
  IF coalesce(is_qualified, false) OR s IN ('booked', 'booked-retail', 'qualified', 'test drive', 'won') THEN
    -- won when the latest qualification row says RETAILED
    RETURN NOT coalesce((SELECT q."RETAILED" FROM leads_qualification q WHERE q.lead_id = p_lead
                         ORDER BY q.id DESC LIMIT 1), false);
  END IF;
  RETURN true;
END
$fn$;
"""

# leads.intake.process_event. With p_new, the event is not in the inbox yet: its row is inserted
# once, at the end, with the outcome (p_event_id drawn from the table's sequence by the caller);
# without, the row is there (a replay, a claimed pending event) and is updated.
# p: as in revision 0006, plus the optional new_lead_source_id and followup_due/followup_since.
PROCESS_EVENT = r"""
CREATE OR REPLACE FUNCTION leadhub_process_event(p_event_id bigint, p jsonb, p_new boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz := clock_timestamp();  -- the time of this enquiry, as utcnow() in Python
  v_reason text := p->>'reject';
  v_branch bigint := (p->>'branch_id')::bigint;
  v_phone text := p->>'phone';
  v_name text := p->>'name';
  v_city text := p->>'city';
  v_email text := p->>'email';
  v_raw jsonb := nullif(p->'raw_payload', 'null'::jsonb);
  v_customer customers;
  v_created boolean := false;
  v_source bigint;
  v_lead_id bigint;
  v_lead_source bigint;
  v_lead_status text;
  v_outcome text;
  v_attempt int;
  v_after jsonb;
  v_followup timestamptz;
BEGIN
  IF v_reason IS NULL AND v_branch IS NOT NULL AND NOT EXISTS (SELECT 1 FROM branches WHERE id = v_branch) THEN
    v_reason := 'unknown branch id ' || v_branch;
  END IF;
  IF v_reason IS NOT NULL THEN
    IF p_new THEN
      INSERT INTO intake_events (id, source, external_id, status, outcome, reason, intake, raw_payload,
                                 lead_id, customer_id, attempts, received_at, processed_at)
      VALUES (p_event_id, p->>'source', p->>'external_id', 'failed', NULL, v_reason, p->'intake', v_raw,
              NULL, NULL, 1, v_now, v_now)
      ON CONFLICT (source, external_id) DO NOTHING;
      IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
          MESSAGE = 'intake event ' || (p->>'source') || ' / ' || (p->>'external_id') || ' was recorded concurrently';
      END IF;
    ELSE
      UPDATE intake_events
         SET status = 'failed', outcome = NULL, reason = v_reason, lead_id = NULL, customer_id = NULL,
             processed_at = v_now, attempts = attempts + 1
       WHERE id = p_event_id;
    END IF;
    RETURN jsonb_build_object('status', 'failed', 'event_id', p_event_id, 'reason', v_reason);
  END IF;

  -- find_or_create_customer_by_phone: insert-or-nothing; a row found (not inserted) is locked, and
  -- looked for again if it moved. A row inserted here is ours until the commit: no lock needed.
  FOR v_attempt IN 1..5 LOOP
    INSERT INTO customers (phone_number_normalized, full_name, city, email, origin, created_at, updated_at)
    VALUES (v_phone, v_name, v_city, v_email, 'intake', v_now, v_now)
    ON CONFLICT (phone_number_normalized) DO NOTHING
    RETURNING * INTO v_customer;
    v_created := FOUND;
    EXIT WHEN v_created;
    SELECT * INTO v_customer FROM customers WHERE phone_number_normalized = v_phone FOR UPDATE;
    EXIT WHEN FOUND;
  END LOOP;
  IF v_customer.id IS NULL THEN
    RAISE EXCEPTION 'customer kept moving; gave up after 5 attempts';
  END IF;
  IF NOT v_created AND (
       (v_name IS NOT NULL AND leadhub_clean_name(v_customer.full_name) IS NULL)
    OR (v_city IS NOT NULL AND coalesce(v_customer.city, '') ~ '^\s*$')
    OR (v_email IS NOT NULL AND coalesce(v_customer.email, '') ~ '^\s*$')) THEN
    UPDATE customers
       SET full_name = CASE WHEN v_name IS NOT NULL AND leadhub_clean_name(full_name) IS NULL
                            THEN v_name ELSE full_name END,
           city = CASE WHEN v_city IS NOT NULL AND coalesce(city, '') ~ '^\s*$' THEN v_city ELSE city END,
           email = CASE WHEN v_email IS NOT NULL AND coalesce(email, '') ~ '^\s*$' THEN v_email ELSE email END,
           updated_at = v_now
     WHERE id = v_customer.id
     RETURNING * INTO v_customer;
  END IF;

  v_source := leadhub_source_for(p->>'source', p->>'source_name', p->>'source_type');

  IF p->>'policy' = 'attach' AND NOT v_created THEN
    -- locked as the lifecycle services lock it: an enquiry never attaches to a lead a concurrent
    -- transaction is closing (the open rule is re-checked on the locked row)
    SELECT id, source_id, status INTO v_lead_id, v_lead_source, v_lead_status
      FROM leads_master
     WHERE customer_id = v_customer.id
       AND leadhub_lead_is_open(id, status, "IS_LOST", is_qualified)
       AND (v_branch IS NULL OR branch_id = v_branch)
     ORDER BY coalesce(enquired_at, created_at) DESC, id DESC
     LIMIT 1
       FOR UPDATE;
  END IF;

  IF v_lead_id IS NOT NULL THEN
    UPDATE leads_master SET updated_at = v_now WHERE id = v_lead_id;
    IF v_lead_source IS DISTINCT FROM v_source THEN
      INSERT INTO lead_sources_history (lead_id, source_id, external_id, raw_payload, received_at, is_primary)
      VALUES (v_lead_id, v_source, coalesce(p->>'external_lead_id', p->>'external_id'), v_raw, v_now, false);
    END IF;
    INSERT INTO leads_logs (lead_id, old_status, new_status, remarks, metadata, created_at)
    VALUES (v_lead_id, v_lead_status, v_lead_status, 'Repeat enquiry via ' || (p->>'source'),
            jsonb_build_object('action', 'repeat_enquiry', 'source', p->>'source',
                               'intake_event_id', p_event_id), v_now);
    v_outcome := 'attached';
  ELSE
    -- a missed call's follow-up, unless an answered call of this customer settles it (a new
    -- customer has no calls yet)
    v_followup := (p->>'followup_due')::timestamptz;
    IF v_followup IS NOT NULL AND NOT v_created AND EXISTS (
         SELECT 1 FROM calls WHERE customer_id = v_customer.id AND answered
            AND started_at >= (p->>'followup_since')::timestamptz) THEN
      v_followup := NULL;
    END IF;
    INSERT INTO leads_master (full_name, phone_number_normalized, alternate_phone_number, source_id,
                              external_lead_id, status, total_attempts, is_qualified, "IS_LOST", raw_payload,
                              branch_id, customer_id, enquired_at, next_followup_at, created_at, updated_at)
    VALUES (coalesce(v_name, v_customer.full_name), v_phone, p->>'alt_phone',
            coalesce((p->>'new_lead_source_id')::bigint, v_source),
            p->>'external_lead_id', 'New', 0, false, NULL, v_raw,
            v_branch, v_customer.id, coalesce((p->>'occurred_at')::timestamptz, v_now), v_followup, v_now, v_now)
    RETURNING id INTO v_lead_id;
    v_outcome := 'created';
    v_after := leadhub_after_create(v_lead_id, v_customer.id, p);
  END IF;

  IF p_new THEN
    INSERT INTO intake_events (id, source, external_id, status, outcome, reason, intake, raw_payload,
                               lead_id, customer_id, attempts, received_at, processed_at)
    VALUES (p_event_id, p->>'source', p->>'external_id', 'processed', v_outcome, NULL, p->'intake', v_raw,
            v_lead_id, v_customer.id, 1, v_now, v_now)
    ON CONFLICT (source, external_id) DO NOTHING;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
        MESSAGE = 'intake event ' || (p->>'source') || ' / ' || (p->>'external_id') || ' was recorded concurrently';
    END IF;
  ELSE
    UPDATE intake_events
       SET status = 'processed', outcome = v_outcome, reason = NULL, lead_id = v_lead_id,
           customer_id = v_customer.id, processed_at = v_now, attempts = attempts + 1
     WHERE id = p_event_id;
  END IF;
  RETURN jsonb_build_object('status', v_outcome, 'event_id', p_event_id, 'lead_id', v_lead_id,
                            'customer_id', v_customer.id, 'customer_created', v_created, 'phone', v_phone)
         || coalesce(v_after, '{}'::jsonb);
END
$fn$;
"""

# leads.intake.ingest: once per source + external id. With p.claim_pending, an event recorded earlier
# but still pending (a Meta webhook waiting for its fetch) is taken and processed instead of being
# answered as a duplicate.
INGEST = """
CREATE OR REPLACE FUNCTION leadhub_ingest(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  -- drawn by every delivery, as INSERT ... ON CONFLICT draws one; only a new event keeps it
  v_event_id bigint := nextval(pg_get_serial_sequence('intake_events', 'id'));
  v_first intake_events;
BEGIN
  -- one delivery of an event at a time: a concurrent copy waits here until the first commits
  PERFORM pg_advisory_xact_lock(hashtext('leadhub.intake_events'), hashtext((p->>'source') || '/' || (p->>'external_id')));
  SELECT * INTO v_first FROM intake_events WHERE source = p->>'source' AND external_id = p->>'external_id';
  IF NOT FOUND THEN
    RETURN leadhub_process_event(v_event_id, p, true);
  END IF;
  IF coalesce((p->>'claim_pending')::boolean, false) AND v_first.status = 'pending' THEN
    SELECT * INTO v_first FROM intake_events WHERE id = v_first.id FOR UPDATE;
    IF v_first.status = 'pending' THEN
      UPDATE intake_events SET intake = p->'intake' WHERE id = v_first.id;
      RETURN leadhub_process_event(v_first.id, p, false);
    END IF;
  END IF;
  RETURN jsonb_build_object('status', 'duplicate', 'event_id', v_first.id, 'lead_id', v_first.lead_id,
                            'customer_id', v_first.customer_id, 'reason', v_first.reason);
END
$fn$;
"""

# integrations.knowlarity.calls.ingest_call: as revision 0006, but what a new lead of this call carries
# (the number's source, a missed call's follow-up) goes into the intake instead of updating the lead.
INGEST_CALL = """
CREATE OR REPLACE FUNCTION leadhub_ingest_call(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz := clock_timestamp();  -- the time of this enquiry, as utcnow() in Python
  c jsonb := p->'call';
  v_map knowlarity_numbers;
  v_mapped boolean := false;
  v_branch bigint;
  v_result jsonb;
  v_status text;
  v_lead bigint;
  v_customer bigint;
  v_call_id bigint;
  v_answered boolean := (c->>'answered')::boolean;
  v_started timestamptz := (c->>'started_at')::timestamptz;
  v_when timestamptz;
  v_due timestamptz;
BEGIN
  IF c->>'lookup_number' IS NOT NULL THEN
    SELECT * INTO v_map FROM knowlarity_numbers WHERE number = c->>'lookup_number';
    v_mapped := FOUND AND v_map.branch_id IS NOT NULL;
  END IF;
  IF v_mapped THEN
    v_branch := v_map.branch_id;
  END IF;
  v_when := coalesce(v_started, v_now);
  v_due := v_when + make_interval(secs => (p->>'sla_seconds')::double precision);
  p := p || jsonb_build_object(
         'branch_id', v_branch,
         'new_lead_source_id', v_map.source_id,
         'followup_due', CASE WHEN NOT v_answered THEN v_due END,
         'followup_since', v_when,
         'intake', (p->'intake') || jsonb_build_object(
            'branch_id', v_branch,
            'extra', (p#>'{intake,extra}') || jsonb_build_object('needs_branch', NOT v_mapped,
                                                                 'campaign', v_map.campaign)));
  v_result := leadhub_ingest(p);
  v_status := v_result->>'status';
  v_lead := (v_result->>'lead_id')::bigint;
  v_customer := (v_result->>'customer_id')::bigint;

  INSERT INTO calls (call_uuid, direction, answered, duration_seconds, agent, virtual_number, number_mapped,
                     customer_phone, recording_url, started_at, ended_at, origin, lead_id, customer_id,
                     intake_event_id, raw_payload, created_at)
  VALUES (c->>'call_uuid', c->>'direction', v_answered, (c->>'duration_seconds')::int,
          c->>'agent', c->>'virtual_number', v_mapped, coalesce(v_result->>'phone', c->>'customer_phone'),
          c->>'recording_url', v_started, (c->>'ended_at')::timestamptz, c->>'origin', v_lead, v_customer,
          (v_result->>'event_id')::bigint, nullif(p->'raw_payload', 'null'::jsonb), v_now)
  ON CONFLICT (call_uuid) DO NOTHING
  RETURNING id INTO v_call_id;
  IF v_call_id IS NULL THEN
    UPDATE calls
       SET duration_seconds = coalesce(duration_seconds, (c->>'duration_seconds')::int),
           agent = coalesce(agent, c->>'agent'),
           recording_url = coalesce(recording_url, c->>'recording_url'),
           started_at = coalesce(started_at, v_started),
           ended_at = coalesce(ended_at, (c->>'ended_at')::timestamptz),
           lead_id = coalesce(lead_id, v_lead),
           customer_id = coalesce(customer_id, v_customer),
           customer_phone = coalesce(customer_phone, v_result->>'phone', c->>'customer_phone')
     WHERE call_uuid = c->>'call_uuid'
     RETURNING id INTO v_call_id;
  END IF;

  IF v_status IN ('created', 'attached') THEN
    IF v_answered THEN
      UPDATE callback_tasks
         SET status = 'done', closed_by_call_id = v_call_id, closed_at = v_now
       WHERE customer_id = v_customer AND status = 'open' AND missed_at <= v_when;
    ELSIF NOT EXISTS (SELECT 1 FROM calls WHERE customer_id = v_customer AND answered
                         AND started_at >= v_when) THEN
      INSERT INTO callback_tasks (lead_id, customer_id, call_id, missed_at, due_at, status, created_at)
      VALUES (v_lead, v_customer, v_call_id, v_when, v_due, 'open', v_now)
      ON CONFLICT (lead_id) WHERE status = 'open' DO NOTHING;
      IF v_status = 'attached' THEN  -- a created lead has it from its insert
        UPDATE leads_master SET next_followup_at = v_due
         WHERE id = v_lead AND (next_followup_at IS NULL OR next_followup_at > v_due);
      END IF;
    END IF;
  END IF;
  RETURN v_result || jsonb_build_object('call_id', v_call_id, 'number_mapped', v_mapped);
END
$fn$;
"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return  # SQLite runs the Python path only
    # The two-argument function of revision 0006 becomes this one's default (replay calls it so).
    op.execute("DROP FUNCTION IF EXISTS leadhub_process_event(bigint, jsonb)")
    for body in (LEAD_IS_OPEN, PROCESS_EVENT, INGEST, INGEST_CALL):
        op.execute(sa.text(body))


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
