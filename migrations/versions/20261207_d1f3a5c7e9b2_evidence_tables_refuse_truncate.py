"""the evidence tables refuse TRUNCATE on PostgreSQL

A statement-level BEFORE TRUNCATE trigger on referral_events, decision_records and
access_log (TRUNCATE fires no row triggers, so the UPDATE/DELETE guards of a7e1c3d5f9b0
let it through). The error names the table. Nothing on SQLite.

Revision ID: d1f3a5c7e9b2
Revises: c4e6a8b0d2f4
Create Date: 2026-12-07 09:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'd1f3a5c7e9b2'
down_revision = 'c4e6a8b0d2f4'
branch_labels = None
depends_on = None

# A copy of models.append_only.TRUNCATE_TRIGGERS as it was when this was written; the
# function is a7e1c3d5f9b0's.
TABLES = ("referral_events", "decision_records", "access_log")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change()")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
