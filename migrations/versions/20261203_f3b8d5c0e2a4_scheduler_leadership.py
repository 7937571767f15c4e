"""scheduler leadership: which scheduler process leads, its epoch and heartbeat

Revision ID: f3b8d5c0e2a4
Revises: d2fa70f0a004
Create Date: 2026-12-03 18:25:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f3b8d5c0e2a4'
down_revision = 'd2fa70f0a004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('scheduler_leaders',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('since', sa.DateTime(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_leaders'))
    )


def downgrade():
    op.drop_table('scheduler_leaders')
