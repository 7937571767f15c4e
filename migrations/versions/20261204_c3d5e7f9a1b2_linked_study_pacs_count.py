"""a linked study's image count at the PACS when last looked, to tell a study still arriving

Revision ID: c3d5e7f9a1b2
Revises: 0b18c4d6e2f8
Create Date: 2026-12-04 22:15:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3d5e7f9a1b2'
down_revision = '0b18c4d6e2f8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('linked_studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pacs_instance_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('pacs_counted_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('linked_studies', schema=None) as batch_op:
        batch_op.drop_column('pacs_counted_at')
        batch_op.drop_column('pacs_instance_count')
