"""the evidence tables are append-only: PostgreSQL refuses UPDATE and DELETE

`referral_events` takes INSERTs only; `decision_records` lets a pending record's PDF be
stored once and `access_log` lets an unsealed row be sealed once; every DELETE is
refused, with an error naming the table (see models/append_only.py). Nothing on
SQLite.

Revision ID: a7e1c3d5f9b0
Revises: c3d5e7f9a1b2
Create Date: 2026-12-05 09:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a7e1c3d5f9b0'
down_revision = 'c3d5e7f9a1b2'
branch_labels = None
depends_on = None

# A copy of models.append_only as it was when this migration was written.
FUNCTIONS = ("""
CREATE OR REPLACE FUNCTION refuse_evidence_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$""", """
CREATE OR REPLACE FUNCTION keep_decision_record_sealed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.id, NEW.referral_id, NEW.version, NEW.previous_id, NEW.event_seq,
      NEW.content::text, NEW.content_sha256, NEW.created_at)
     IS DISTINCT FROM
     (OLD.id, OLD.referral_id, OLD.version, OLD.previous_id, OLD.event_seq,
      OLD.content::text, OLD.content_sha256, OLD.created_at) THEN
    RAISE EXCEPTION 'decision_records is append-only: record % was signed as it is', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF OLD.status <> 'pending'
     AND (NEW.status, NEW.pdf, NEW.pdf_sha256, NEW.error, NEW.rendered_at)
         IS DISTINCT FROM (OLD.status, OLD.pdf, OLD.pdf_sha256, OLD.error, OLD.rendered_at)
  THEN
    RAISE EXCEPTION 'decision_records is append-only: record % is already %', OLD.id,
      OLD.status USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$""", """
CREATE OR REPLACE FUNCTION keep_access_log_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.seq IS NOT NULL
     OR (NEW.id, NEW.at, NEW.user_id, NEW.email, NEW.role, NEW.address, NEW.action,
         NEW.outcome, NEW.referral_id, NEW.detail)
        IS DISTINCT FROM
        (OLD.id, OLD.at, OLD.user_id, OLD.email, OLD.role, OLD.address, OLD.action,
         OLD.outcome, OLD.referral_id, OLD.detail) THEN
    RAISE EXCEPTION 'access_log is append-only: only an unsealed row''s seq, prev_hash '
      'and hash may be set, once' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$""")

TRIGGERS = {
    "referral_events": ("""
CREATE TRIGGER referral_events_append_only BEFORE UPDATE OR DELETE ON referral_events
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change()""",),
    "decision_records": ("""
CREATE TRIGGER decision_records_append_only BEFORE DELETE ON decision_records
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change()""", """
CREATE TRIGGER decision_records_sealed BEFORE UPDATE ON decision_records
  FOR EACH ROW EXECUTE FUNCTION keep_decision_record_sealed()"""),
    "access_log": ("""
CREATE TRIGGER access_log_append_only BEFORE DELETE ON access_log
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change()""", """
CREATE TRIGGER access_log_sealed BEFORE UPDATE ON access_log
  FOR EACH ROW EXECUTE FUNCTION keep_access_log_sealed()"""),
}

DROP_TRIGGERS = (
    "DROP TRIGGER access_log_sealed ON access_log",
    "DROP TRIGGER access_log_append_only ON access_log",
    "DROP TRIGGER decision_records_sealed ON decision_records",
    "DROP TRIGGER decision_records_append_only ON decision_records",
    "DROP TRIGGER referral_events_append_only ON referral_events",
    "DROP FUNCTION keep_access_log_sealed()",
    "DROP FUNCTION keep_decision_record_sealed()",
    "DROP FUNCTION refuse_evidence_change()",
)


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for statement in FUNCTIONS:
        op.execute(statement)
    for statements in TRIGGERS.values():
        for statement in statements:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for statement in DROP_TRIGGERS:
        op.execute(statement)
