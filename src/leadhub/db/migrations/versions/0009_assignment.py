"""Assignment rules and their rotation; new leads are assigned inside the intake's transaction.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadhub.db import ddl
from leadhub.db.base import NAMING_CONVENTION
from leadhub.db.types import BigIntPK, UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_md = sa.MetaData(naming_convention=NAMING_CONVENTION)
sa.Table("branches", _md, sa.Column("id", sa.BigInteger, primary_key=True))
sa.Table("users", _md, sa.Column("user_id", sa.BigInteger, primary_key=True))

assignment_rules = sa.Table(
    "assignment_rules",
    _md,
    sa.Column("id", BigIntPK, sa.Identity(always=False), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("channel", sa.Text),
    sa.Column("branch_id", sa.BigInteger, sa.ForeignKey("branches.id")),
    sa.Column("mode", sa.Text, nullable=False, server_default=sa.text("'round_robin'")),
    sa.Column("active_days", sa.Text, nullable=False, server_default=sa.text("'1234567'")),
    sa.Column("active_from", sa.Time),
    sa.Column("active_to", sa.Time),
    sa.Column("timezone", sa.Text, nullable=False, server_default=sa.text("'Asia/Kolkata'")),
    sa.Column("sticky", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("priority", sa.Integer, nullable=False, server_default=sa.text("100")),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("created_at", UTCDateTime, server_default=sa.func.now()),
    sa.Column("updated_at", UTCDateTime, server_default=sa.func.now()),
    sa.CheckConstraint("mode IN ('round_robin', 'weighted')", name="ck_assignment_rules_mode"),
)
assignment_members = sa.Table(
    "assignment_members",
    _md,
    sa.Column("id", BigIntPK, sa.Identity(always=False), primary_key=True),
    sa.Column("rule_id", sa.BigInteger, sa.ForeignKey("assignment_rules.id"), nullable=False),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.user_id"), nullable=False),
    sa.Column("weight", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("assigned_count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("last_assigned_at", UTCDateTime),
    sa.Index("ux_assignment_members_rule_user", "rule_id", "user_id", unique=True),
    sa.CheckConstraint("weight >= 1", name="ck_assignment_members_weight"),
)

# leads.assignment.rule_is_active, in SQL: the local time inside [active_from, active_to) on one of
# active_days; a window whose end is earlier than its start crosses midnight and belongs to the day it
# starts on.
RULE_ACTIVE = """
CREATE OR REPLACE FUNCTION leadhub_rule_active(days text, t_from time, t_to time, tz text, at timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $fn$
  SELECT CASE
    WHEN t_from IS NULL OR t_to IS NULL THEN strpos(days, dow::text) > 0
    WHEN t_from <= t_to THEN strpos(days, dow::text) > 0 AND local::time >= t_from AND local::time < t_to
    WHEN local::time >= t_from THEN strpos(days, dow::text) > 0
    -- the small hours belong to the shift that started the evening before
    ELSE local::time < t_to AND strpos(days, (CASE WHEN dow > 1 THEN dow - 1 ELSE 7 END)::text) > 0
  END
  FROM (SELECT at AT TIME ZONE tz AS local, extract(isodow FROM at AT TIME ZONE tz)::int AS dow) AS l
$fn$;
"""

# leads.assignment.assign_new_lead, in SQL (replaces the no-op hook of revision 0006).
ASSIGN = """
CREATE OR REPLACE FUNCTION leadhub_after_create(p_lead bigint, p_customer bigint, p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz := clock_timestamp();
  v_branch bigint := (p->>'branch_id')::bigint;
  v_rule assignment_rules;
  v_found boolean := false;
  v_user bigint;
  v_member bigint;
  v_reason text;
BEGIN
  FOR v_rule IN
    SELECT * FROM assignment_rules r
     WHERE r.is_active AND (r.channel IS NULL OR r.channel = p->>'source')
       AND (r.branch_id IS NULL OR r.branch_id = v_branch)
     ORDER BY r.priority, r.id
  LOOP
    IF leadhub_rule_active(v_rule.active_days, v_rule.active_from, v_rule.active_to, v_rule.timezone, v_now) THEN
      v_found := true;
      EXIT;
    END IF;
  END LOOP;
  IF NOT v_found THEN
    RETURN NULL;  -- no rule applies now: the lead waits in the unassigned queue
  END IF;
  IF v_rule.sticky THEN
    SELECT l.assigned_to INTO v_user
      FROM leads_master l JOIN users u ON u.user_id = l.assigned_to
     WHERE l.customer_id = p_customer AND l.id <> p_lead AND coalesce(u.status, true)
     ORDER BY coalesce(l.assigned_at, l.created_at) DESC, l.id DESC
     LIMIT 1;
    v_reason := 'sticky';
  END IF;
  IF v_user IS NULL THEN
    -- the rule's row lock serialises the rotation: concurrent intakes take turns, none read a stale count
    PERFORM 1 FROM assignment_rules WHERE id = v_rule.id FOR UPDATE;
    SELECT m.id, m.user_id INTO v_member, v_user
      FROM assignment_members m JOIN users u ON u.user_id = m.user_id
     WHERE m.rule_id = v_rule.id AND m.is_active AND coalesce(u.status, true)
     ORDER BY CASE WHEN v_rule.mode = 'weighted' THEN (m.assigned_count + 1)::numeric / m.weight
                   ELSE m.assigned_count::numeric END, m.id
     LIMIT 1;
    IF v_user IS NULL THEN
      RETURN NULL;  -- nobody active in the rotation
    END IF;
    UPDATE assignment_members SET assigned_count = assigned_count + 1, last_assigned_at = v_now
     WHERE id = v_member;
    v_reason := v_rule.mode;
  END IF;
  UPDATE leads_master SET assigned_to = v_user, assigned_at = v_now WHERE id = p_lead;
  INSERT INTO leads_logs (lead_id, old_status, new_status, remarks, metadata, created_at)
  VALUES (p_lead, 'New', 'New', 'Assigned (' || replace(v_reason, '_', ' ') || ', rule ' || v_rule.name || ')',
          jsonb_build_object('action', 'assigned', 'to', v_user, 'reason', v_reason, 'rule_id', v_rule.id), v_now);
  RETURN jsonb_build_object('assigned_to', v_user, 'assignment_reason', v_reason);
END
$fn$;
"""


def upgrade() -> None:
    ddl.set_lock_timeout()
    ddl.create_table(assignment_rules)
    ddl.create_table(assignment_members)
    if op.get_context().dialect.name == "postgresql":
        op.execute(sa.text(RULE_ACTIVE))
        op.execute(sa.text(ASSIGN))


def downgrade() -> None:
    raise NotImplementedError("leadhub migrations only move forward")
