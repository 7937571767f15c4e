"""a decision record notes the first anchor that covered it (root and time), once

The anchoring job notes each record its signed tree covers for the first time
(workflow/audit/records.note_anchor); the referral page and the API show it, and a
record made since the last anchor shows "not yet anchored". Records already made are
noted by the next anchor. On PostgreSQL the decision-record trigger lets the two
columns be set once (models/append_only.py).

Revision ID: b8f2d4e6a0c1
Revises: a7e1c3d5f9b0
Create Date: 2026-12-05 11:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b8f2d4e6a0c1'
down_revision = 'a7e1c3d5f9b0'
branch_labels = None
depends_on = None

# A copy of models.append_only's function as it was when this migration was written.
KEEP_SEALED = """
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
END $$"""

# The function as migration a7e1c3d5f9b0 made it, for the downgrade.
KEEP_SEALED_BEFORE = """
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
END $$"""


def upgrade():
    with op.batch_alter_table('decision_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('anchored_root', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('anchored_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_decision_records_unanchored', ['id'], unique=False,
                              postgresql_where=sa.text('anchored_root IS NULL'),
                              sqlite_where=sa.text('anchored_root IS NULL'))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(KEEP_SEALED)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(KEEP_SEALED_BEFORE)
    with op.batch_alter_table('decision_records', schema=None) as batch_op:
        batch_op.drop_index('ix_decision_records_unanchored',
                            postgresql_where=sa.text('anchored_root IS NULL'),
                            sqlite_where=sa.text('anchored_root IS NULL'))
        batch_op.drop_column('anchored_at')
        batch_op.drop_column('anchored_root')
