"""deliveries.retry_at: when a delivery the provider never took is sent again

Revision ID: b1c4d6e8f014
Revises: e2a7c4b9d1f3
Create Date: 2026-12-04 21:10:00

Backwards compatible for one release: a nullable column that the previous release
neither reads nor writes.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b1c4d6e8f014'
down_revision = 'e2a7c4b9d1f3'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('deliveries', sa.Column('retry_at', sa.DateTime(), nullable=True))
    op.create_index(op.f('ix_deliveries_retry_at'), 'deliveries', ['retry_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_deliveries_retry_at'), table_name='deliveries')
    with op.batch_alter_table('deliveries') as batch_op:
        batch_op.drop_column('retry_at')
