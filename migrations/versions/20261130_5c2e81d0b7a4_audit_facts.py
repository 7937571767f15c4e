"""audit facts: one narrow row per referral for the audit dashboard

`audit_facts` holds each referral's filters and its audit clocks packed (see
models/audit_facts.py); on PostgreSQL a trigger on `referrals` keeps it current and the
existing referrals are copied in here. On SQLite the table stays empty (the dashboard
reads `referrals` there).

Revision ID: 5c2e81d0b7a4
Revises: 3afa070a674b
Create Date: 2026-11-30 07:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5c2e81d0b7a4'
down_revision = '3afa070a674b'
branch_labels = None
depends_on = None

# A copy of models.audit_facts.KEEP_FACTS as it was when this migration was written.
KEEP_FACTS = ("""
CREATE FUNCTION audit_clocks(r referrals) RETURNS bytea LANGUAGE sql STABLE AS $$
  SELECT timestamp_send(coalesce(r.created_at, '-infinity'))
      || timestamp_send(coalesce(r.first_paged_at, '-infinity'))
      || timestamp_send(coalesce(r.acknowledged_at, '-infinity'))
      || timestamp_send(coalesce(r.first_image_viewed_at, '-infinity'))
      || timestamp_send(coalesce(r.decided_at, '-infinity'))
      || timestamp_send(coalesce(r.departed_at, '-infinity'))
      || timestamp_send(coalesce(CASE WHEN r.outcome = 'transfer' THEN r.arrived_at END,
                                 '-infinity'))
      || timestamp_send(coalesce(CASE WHEN r.onset_certainty IN ('precise', 'estimated')
                                       AND r.specialty_id = (SELECT id FROM specialties
                                                             WHERE code = 'stroke')
                                      THEN r.onset_at END, '-infinity'))
      || int4send(r.referring_hospital_id)
      || int4send(CASE WHEN r.outcome = 'transfer' THEN 1 ELSE 0 END
                  + CASE WHEN r.unanswered_at IS NOT NULL THEN 2 ELSE 0 END
                  + CASE WHEN r.escalated THEN 4 ELSE 0 END)
$$""", """
CREATE FUNCTION keep_audit_facts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit_facts (referral_id, raised_at, specialty_id, referring_hospital_id,
                           hub_service_id, outcome, state, clocks)
  VALUES (NEW.id, NEW.created_at, NEW.specialty_id, NEW.referring_hospital_id,
          NEW.hub_service_id, NEW.outcome, NEW.state, audit_clocks(NEW))
  ON CONFLICT (referral_id) DO UPDATE SET
    raised_at = EXCLUDED.raised_at, specialty_id = EXCLUDED.specialty_id,
    referring_hospital_id = EXCLUDED.referring_hospital_id,
    hub_service_id = EXCLUDED.hub_service_id, outcome = EXCLUDED.outcome,
    state = EXCLUDED.state, clocks = EXCLUDED.clocks;
  RETURN NULL;
END $$""", """
CREATE TRIGGER referrals_keep_audit_facts AFTER INSERT OR UPDATE ON referrals
  FOR EACH ROW EXECUTE FUNCTION keep_audit_facts()""")

BACKFILL = """
INSERT INTO audit_facts (referral_id, raised_at, specialty_id, referring_hospital_id,
                         hub_service_id, outcome, state, clocks)
SELECT r.id, r.created_at, r.specialty_id, r.referring_hospital_id, r.hub_service_id,
       r.outcome, r.state, audit_clocks(r)
FROM referrals AS r
"""


def upgrade():
    op.create_table(
        'audit_facts',
        sa.Column('referral_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('raised_at', sa.DateTime(), nullable=False),
        sa.Column('specialty_id', sa.Integer(), nullable=False),
        sa.Column('referring_hospital_id', sa.Integer(), nullable=False),
        sa.Column('hub_service_id', sa.Integer(), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=True),
        sa.Column('state', sa.String(length=32), nullable=False),
        sa.Column('clocks', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'],
                                name=op.f('fk_audit_facts_referral_id_referrals'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('referral_id', name=op.f('pk_audit_facts')),
    )
    with op.batch_alter_table('audit_facts', schema=None) as batch_op:
        batch_op.create_index('ix_audit_facts_raised_at', ['raised_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        for statement in KEEP_FACTS:
            op.execute(statement)
        op.execute(BACKFILL)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER referrals_keep_audit_facts ON referrals")
        op.execute("DROP FUNCTION keep_audit_facts()")
        op.execute("DROP FUNCTION audit_clocks(referrals)")
    with op.batch_alter_table('audit_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_facts_raised_at')
    op.drop_table('audit_facts')
