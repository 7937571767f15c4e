"""The evidence tables refuse to be rewritten: PostgreSQL triggers, so every writer is held.

`referral_events` takes INSERTs only. `decision_records` and `access_log` each have
one change the app itself makes after the INSERT, and only that one is let through:

- a decision record is rendered later (workflow/audit/records.py): while it is
  ``pending`` its status, PDF, PDF hash, error and rendered time may be set, once;
  the first anchor that covers it is noted once (anchored root and time); what was
  signed (content, its hash, version, referral, event) never changes;
- an access-log row is sealed into the log's chain as its transaction commits
  (workflow/access_log.py): its seq, prev_hash and hash may be set while seq is
  still NULL; what it says happened never changes.

Every DELETE is refused, and so is TRUNCATE (a statement-level trigger: TRUNCATE fires
no row triggers). The triggers hold the app's own role and any mistake; a
superuser or the tables' owner can still drop them, which is what the hash chains
and the anchors outside the database are for (docs/SECURITY.md). docs/DEPLOY.md,
**Database roles**, gives the app a role that cannot drop or alter them.

On SQLite nothing is installed (one schema for both; the chains still catch edits).
The same statements are in the migration that installed them (a snapshot).
"""

from __future__ import annotations

from sqlalchemy import DDL, event

from extensions import db
from models.audit import AccessLog
from models.records import DecisionRecord
from models.referral import ReferralEvent

TABLES = ("referral_events", "decision_records", "access_log")

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
  IF OLD.anchored_root IS NOT NULL
     AND (NEW.anchored_root, NEW.anchored_at) IS DISTINCT FROM
         (OLD.anchored_root, OLD.anchored_at) THEN
    RAISE EXCEPTION 'decision_records is append-only: record % was anchored already',
      OLD.id USING ERRCODE = 'insufficient_privilege';
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

# TRUNCATE empties a table without a DELETE per row: refused by a statement trigger.
TRUNCATE_TRIGGERS = {table: f"""
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change()""" for table in TABLES}

DROP_FUNCTIONS = (
    "DROP FUNCTION IF EXISTS keep_access_log_sealed()",
    "DROP FUNCTION IF EXISTS keep_decision_record_sealed()",
    "DROP FUNCTION IF EXISTS refuse_evidence_change()",
)


def _on_postgresql(statement: str) -> DDL:
    # DDL fills in %(table)s-style names: the statements' own % signs are doubled.
    return DDL(statement.replace("%", "%%")).execute_if(dialect="postgresql")


# Dropping a table drops its triggers; the functions go after the last table.
for _statement in FUNCTIONS:
    event.listen(db.metadata, "before_create", _on_postgresql(_statement))
for _model in (ReferralEvent, DecisionRecord, AccessLog):
    for _statement in (*TRIGGERS[_model.__tablename__],
                       TRUNCATE_TRIGGERS[_model.__tablename__]):
        event.listen(_model.__table__, "after_create", _on_postgresql(_statement))
for _statement in DROP_FUNCTIONS:
    event.listen(db.metadata, "after_drop", _on_postgresql(_statement))
