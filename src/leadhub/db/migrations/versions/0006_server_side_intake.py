"""Server-side intake on PostgreSQL: the intake rule of leads/intake.py as PL/pgSQL functions.

One enquiry becomes one round trip (`SELECT leadhub_ingest(...)`) instead of about ten statements
built by SQLAlchemy: the webhook and sync paths spent 4 to 12 ms of Python CPU per enquiry on those.
The Python path stays the definition on SQLite and the reference on PostgreSQL; a differential test
(tests/leads/test_server_side.py) runs both on the same inputs and compares every row they write.
Phones are canonicalised in Python before the call (leadhub.phones); names are cleaned in Python,
and `leadhub_clean_name` repeats the placeholder rule only to judge names already stored.

No "%" in the bodies: the offline script (`leadhub db sql`) escapes it. These are functions, not tables: CREATE OR REPLACE is idempotent and takes no lock on any table.
A later change to the rule is a new revision that replaces them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The placeholder rule of leadhub.customers.names (same alternatives; \y is PostgreSQL's \b). Python's
# str.split() and \s know Unicode whitespace and \d every script's digits; PostgreSQL's \s and \d, in
# a C-collated database, only ASCII. So the classes are spelled out: Unicode whitespace, and ASCII and
# Devanagari digits (the scripts a phone number typed as a name arrives in here).
WS = r"\s\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u001c-\u001f"
DIGITS = r"0-9\u0966-\u096f"
CLEAN_NAME = rf"""
CREATE OR REPLACE FUNCTION leadhub_clean_name(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
  SELECT CASE
    WHEN tidy = '' OR tidy ~* (
      '^(?:(?:knowlarity|meta|facebook|fb|instagram|ig|website|web|walk[{WS}-]?in|google|unknown|new|test)'
      '[{WS}]+lead\y.*|(?:unknown|n/?a|na|none|null|nil|test|customer|caller|lead|-+|\.+|\?+)'
      '|[{WS}{DIGITS}+()./-]*)$'
    ) THEN NULL
    ELSE tidy
  END
  FROM (SELECT btrim(regexp_replace(value, '[{WS}]+', ' ', 'g')) AS tidy) AS t
$fn$;
"""

# leads.status.open_lead_clause, for one row: not lost, no status that ends the story (by name or
# prefix), and not a qualified lead whose latest qualification row says RETAILED (then it is won).
LEAD_IS_OPEN = """
CREATE OR REPLACE FUNCTION leadhub_lead_is_open(p_lead bigint, status text, is_lost boolean, is_qualified boolean)
RETURNS boolean LANGUAGE sql STABLE AS $fn$
  SELECT NOT coalesce(is_lost, false)
     AND s NOT IN ('booked-retail', 'closed', 'closed_due_to_sale_elsewhere', 'disqualified', 'lost',
                   'unqualified', 'won')
     AND NOT starts_with(s, 'disqualified') AND NOT starts_with(s, 'lost') AND NOT starts_with(s, 'unqualified')
     AND NOT ((coalesce(is_qualified, false) OR s IN ('booked', 'booked-retail', 'qualified', 'test drive', 'won'))
              AND coalesce((SELECT q."RETAILED" FROM leads_qualification q WHERE q.lead_id = p_lead
                            ORDER BY q.id DESC LIMIT 1), false))
  FROM (SELECT lower(trim(coalesce(status, ''))) AS s) AS t
$fn$;
"""

# The legacy `sources` row for a channel (leads.intake.resolve_source_id).
SOURCE_FOR = """
CREATE OR REPLACE FUNCTION leadhub_source_for(p_channel text, p_name text, p_type text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz := clock_timestamp();  -- the time of this enquiry, as utcnow() in Python
  v_id bigint;
BEGIN
  SELECT source_id INTO v_id FROM source_channels WHERE channel = p_channel;
  IF v_id IS NOT NULL THEN
    RETURN v_id;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('leadhub.source_channels'));
  SELECT source_id INTO v_id FROM source_channels WHERE channel = p_channel;
  IF v_id IS NOT NULL THEN
    RETURN v_id;
  END IF;
  SELECT id INTO v_id FROM sources WHERE display_name = p_name AND source_type = p_type ORDER BY id LIMIT 1;
  IF v_id IS NULL THEN
    INSERT INTO sources (display_name, source_type, created_at) VALUES (p_name, p_type, v_now)
    RETURNING id INTO v_id;
  END IF;
  INSERT INTO source_channels (channel, source_id) VALUES (p_channel, v_id);
  RETURN v_id;
END
$fn$;
"""

# What happens to a lead the intake has just created, beyond the intake itself. Here nothing; a later
# revision (assignment) replaces it. Answers a JSON object merged into the intake's answer, or NULL.
AFTER_CREATE = """
CREATE OR REPLACE FUNCTION leadhub_after_create(p_lead bigint, p_customer bigint, p jsonb) RETURNS jsonb
LANGUAGE sql AS $fn$ SELECT NULL::jsonb $fn$;
"""

# leads.intake.process_event: an inbox event (already recorded) becomes a lead.
# p: source, external_id, external_lead_id, intake, raw_payload, phone (E.164) or reject (reason),
#    alt_phone, name/city/email (cleaned), branch_id, occurred_at, policy, source_name, source_type.
PROCESS_EVENT = r"""
CREATE OR REPLACE FUNCTION leadhub_process_event(p_event_id bigint, p jsonb) RETURNS jsonb
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
  v_inserted bigint;
  v_created boolean;
  v_source bigint;
  v_lead_id bigint;
  v_lead_source bigint;
  v_lead_status text;
  v_outcome text;
  v_attempt int;
  v_after jsonb;
BEGIN
  IF v_reason IS NULL AND v_branch IS NOT NULL AND NOT EXISTS (SELECT 1 FROM branches WHERE id = v_branch) THEN
    v_reason := 'unknown branch id ' || v_branch;
  END IF;
  IF v_reason IS NOT NULL THEN
    UPDATE intake_events
       SET status = 'failed', outcome = NULL, reason = v_reason, lead_id = NULL, customer_id = NULL,
           processed_at = v_now, attempts = attempts + 1
     WHERE id = p_event_id;
    RETURN jsonb_build_object('status', 'failed', 'event_id', p_event_id, 'reason', v_reason);
  END IF;

  -- find_or_create_customer_by_phone: insert-or-nothing, then lock; look again if the row moved.
  FOR v_attempt IN 1..5 LOOP
    INSERT INTO customers (phone_number_normalized, full_name, city, email, origin, created_at, updated_at)
    VALUES (v_phone, v_name, v_city, v_email, 'intake', v_now, v_now)
    ON CONFLICT (phone_number_normalized) DO NOTHING
    RETURNING id INTO v_inserted;
    SELECT * INTO v_customer FROM customers WHERE phone_number_normalized = v_phone FOR UPDATE;
    EXIT WHEN FOUND;
  END LOOP;
  IF v_customer.id IS NULL THEN
    RAISE EXCEPTION 'customer kept moving; gave up after 5 attempts';
  END IF;
  v_created := v_inserted IS NOT NULL;
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
    INSERT INTO leads_master (full_name, phone_number_normalized, alternate_phone_number, source_id,
                              external_lead_id, status, total_attempts, is_qualified, "IS_LOST", raw_payload,
                              branch_id, customer_id, enquired_at, created_at, updated_at)
    VALUES (coalesce(v_name, v_customer.full_name), v_phone, p->>'alt_phone', v_source,
            p->>'external_lead_id', 'New', 0, false, NULL, v_raw,
            v_branch, v_customer.id, coalesce((p->>'occurred_at')::timestamptz, v_now), v_now, v_now)
    RETURNING id INTO v_lead_id;
    v_outcome := 'created';
    v_after := leadhub_after_create(v_lead_id, v_customer.id, p);
  END IF;

  UPDATE intake_events
     SET status = 'processed', outcome = v_outcome, reason = NULL, lead_id = v_lead_id,
         customer_id = v_customer.id, processed_at = v_now, attempts = attempts + 1
   WHERE id = p_event_id;
  RETURN jsonb_build_object('status', v_outcome, 'event_id', p_event_id, 'lead_id', v_lead_id,
                            'customer_id', v_customer.id, 'customer_created', v_created, 'phone', v_phone)
         || coalesce(v_after, '{}'::jsonb);
END
$fn$;
"""

# leads.intake.ingest: record in the inbox (once per source + external id), then process.
# With p.claim_pending, an event recorded earlier but still pending (a Meta webhook waiting for its
# fetch) is taken and processed instead of being answered as a duplicate.
INGEST = """
CREATE OR REPLACE FUNCTION leadhub_ingest(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz := clock_timestamp();  -- the time of this enquiry, as utcnow() in Python
  v_event_id bigint;
  v_first intake_events;
BEGIN
  INSERT INTO intake_events (source, external_id, status, intake, raw_payload, attempts, received_at)
  VALUES (p->>'source', p->>'external_id', 'pending', p->'intake', nullif(p->'raw_payload', 'null'::jsonb),
          0, v_now)
  ON CONFLICT (source, external_id) DO NOTHING
  RETURNING id INTO v_event_id;
  IF v_event_id IS NOT NULL THEN
    RETURN leadhub_process_event(v_event_id, p);
  END IF;
  SELECT * INTO v_first FROM intake_events WHERE source = p->>'source' AND external_id = p->>'external_id';
  IF coalesce((p->>'claim_pending')::boolean, false) AND v_first.status = 'pending' THEN
    SELECT * INTO v_first FROM intake_events WHERE id = v_first.id FOR UPDATE;
    IF v_first.status = 'pending' THEN
      UPDATE intake_events SET intake = p->'intake' WHERE id = v_first.id;
      RETURN leadhub_process_event(v_first.id, p);
    END IF;
  END IF;
  RETURN jsonb_build_object('status', 'duplicate', 'event_id', v_first.id, 'lead_id', v_first.lead_id,
                            'customer_id', v_first.customer_id, 'reason', v_first.reason);
END
$fn$;
"""

# Many enquiries in one round trip (a sync page). Each runs in its own subtransaction, so one that
# raises is answered {"error": ...} and the others are kept.
INGEST_MANY = """
CREATE OR REPLACE FUNCTION leadhub_ingest_many(p_items jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz := clock_timestamp();  -- the time of this enquiry, as utcnow() in Python
  v_item jsonb;
  v_out jsonb := '[]'::jsonb;
BEGIN
  FOR v_item IN SELECT value FROM jsonb_array_elements(p_items) LOOP
    BEGIN
      v_out := v_out || jsonb_build_array(leadhub_ingest(v_item));
    EXCEPTION WHEN OTHERS THEN
      v_out := v_out || jsonb_build_array(jsonb_build_object('error', SQLSTATE || ': ' || SQLERRM));
    END;
  END LOOP;
  RETURN v_out;
END
$fn$;
"""

# integrations.knowlarity.calls.ingest_call: the virtual number's branch, the intake, the call row
# (stored once, later deliveries only fill what is missing), and the callback task.
# p: as leadhub_ingest, plus p.call: call_uuid, origin, direction, answered, duration_seconds, agent,
#    lookup_number (canonical, for the mapping), virtual_number (as stored), customer_phone (fallback), recording_url, started_at, ended_at;
#    p.sla_seconds.
INGEST_CALL = """
CREATE OR REPLACE FUNCTION leadhub_ingest_call(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz := clock_timestamp();  -- the time of this enquiry, as utcnow() in Python
  c jsonb := p->'call';
  v_map knowlarity_numbers;
  v_mapped boolean := false;
  v_result jsonb;
  v_status text;
  v_lead bigint;
  v_customer bigint;
  v_call_id bigint;
  v_started timestamptz := (c->>'started_at')::timestamptz;
  v_when timestamptz;
  v_due timestamptz;
BEGIN
  IF c->>'lookup_number' IS NOT NULL THEN
    SELECT * INTO v_map FROM knowlarity_numbers WHERE number = c->>'lookup_number';
    v_mapped := FOUND AND v_map.branch_id IS NOT NULL;
  END IF;
  p := p || jsonb_build_object('branch_id', CASE WHEN v_mapped THEN v_map.branch_id END);
  p := jsonb_set(p, '{intake,branch_id}', coalesce(to_jsonb(CASE WHEN v_mapped THEN v_map.branch_id END), 'null'));
  p := jsonb_set(p, '{intake,extra}', (p#>'{intake,extra}') || jsonb_build_object(
         'needs_branch', NOT v_mapped, 'campaign', v_map.campaign));
  v_result := leadhub_ingest(p);
  v_status := v_result->>'status';
  v_lead := (v_result->>'lead_id')::bigint;
  v_customer := (v_result->>'customer_id')::bigint;
  IF v_status = 'created' AND v_map.source_id IS NOT NULL THEN
    UPDATE leads_master SET source_id = v_map.source_id WHERE id = v_lead;
  END IF;

  INSERT INTO calls (call_uuid, direction, answered, duration_seconds, agent, virtual_number, number_mapped,
                     customer_phone, recording_url, started_at, ended_at, origin, lead_id, customer_id,
                     intake_event_id, raw_payload, created_at)
  VALUES (c->>'call_uuid', c->>'direction', (c->>'answered')::boolean, (c->>'duration_seconds')::int,
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
    v_when := coalesce(v_started, v_now);
    IF (c->>'answered')::boolean THEN
      UPDATE callback_tasks
         SET status = 'done', closed_by_call_id = v_call_id, closed_at = v_now
       WHERE customer_id = v_customer AND status = 'open' AND missed_at <= v_when;
    ELSIF NOT EXISTS (SELECT 1 FROM calls WHERE customer_id = v_customer AND answered
                         AND started_at >= v_when) THEN
      v_due := v_when + make_interval(secs => (p->>'sla_seconds')::double precision);
      INSERT INTO callback_tasks (lead_id, customer_id, call_id, missed_at, due_at, status, created_at)
      VALUES (v_lead, v_customer, v_call_id, v_when, v_due, 'open', v_now)
      ON CONFLICT (lead_id) WHERE status = 'open' DO NOTHING;
      UPDATE leads_master SET next_followup_at = v_due
       WHERE id = v_lead AND (next_followup_at IS NULL OR next_followup_at > v_due);
    END IF;
  END IF;
  RETURN v_result || jsonb_build_object('call_id', v_call_id, 'number_mapped', v_mapped);
END
$fn$;
"""

FUNCTIONS = (
    CLEAN_NAME,
    LEAD_IS_OPEN,
    SOURCE_FOR,
    AFTER_CREATE,
    PROCESS_EVENT,
    INGEST,
    INGEST_MANY,
    INGEST_CALL,
)
NAMES = (
    "leadhub_ingest_call(jsonb)",
    "leadhub_ingest_many(jsonb)",
    "leadhub_ingest(jsonb)",
    "leadhub_process_event(bigint, jsonb)",
    "leadhub_source_for(text, text, text)",
    "leadhub_after_create(bigint, bigint, jsonb)",
    "leadhub_lead_is_open(bigint, text, boolean, boolean)",
    "leadhub_clean_name(text)",
)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return  # SQLite runs the Python path only
    for body in FUNCTIONS:
        # text() reads ":name" as a parameter; the regex's "(?:" is escaped as text() documents.
        op.execute(sa.text(body.replace("(?:", "(?\\:")))


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for name in NAMES:
        op.execute(f"DROP FUNCTION IF EXISTS {name}")
