"""root_emails (the day's signed tree head emailed to the audit leads, once) and
integrity_runs (what each integrity check checked, for the next night's incremental one)

Two new tables that the previous release neither reads nor writes.

Revision ID: d2a4c6e8f0b3
Revises: d1f3a5c7e9b2
Create Date: 2026-12-07 09:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd2a4c6e8f0b3'
down_revision = 'd1f3a5c7e9b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('root_emails',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('root', sa.String(length=64), nullable=False),
        sa.Column('tree_at', sa.String(length=32), nullable=False),
        sa.Column('claimed_by', sa.String(length=100), nullable=False),
        sa.Column('claimed_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('result', sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_root_emails'))
    )
    op.create_table('integrity_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('full', sa.Boolean(), nullable=False),
        sa.Column('anchor_root', sa.String(length=64), nullable=False),
        sa.Column('anchor_at', sa.String(length=32), nullable=False),
        sa.Column('xid', sa.BigInteger(), nullable=True),
        sa.Column('referrals_checked', sa.Integer(), nullable=False),
        sa.Column('events_checked', sa.Integer(), nullable=False),
        sa.Column('problems', sa.Integer(), nullable=False),
        sa.Column('first_problem', sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_integrity_runs'))
    )


def downgrade():
    op.drop_table('integrity_runs')
    op.drop_table('root_emails')
