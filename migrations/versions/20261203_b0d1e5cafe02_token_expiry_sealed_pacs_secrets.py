"""API tokens expire (existing ones 90 days after they were made); PACS secrets are
stored encrypted, in a column wide enough for the ciphertext

Plain PACS secrets already stored are sealed the first time the app reads them
(workflow/imaging/sealing.py): the key lives in the app's environment, not here.

Revision ID: b0d1e5cafe02
Revises: c5505ec0de03
Create Date: 2026-12-03 09:00:00.000000

"""
from datetime import timedelta

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b0d1e5cafe02'
down_revision = 'c5505ec0de03'
branch_labels = None
depends_on = None

EXISTING_TOKEN_DAYS = 90


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
    tokens = sa.table('api_tokens', sa.column('id', sa.Integer()),
                      sa.column('created_at', sa.DateTime()),
                      sa.column('expires_at', sa.DateTime()))
    connection = op.get_bind()
    for token_id, created_at in connection.execute(
            sa.select(tokens.c.id, tokens.c.created_at)).all():
        connection.execute(tokens.update().where(tokens.c.id == token_id).values(
            expires_at=created_at + timedelta(days=EXISTING_TOKEN_DAYS)))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('expires_at', existing_type=sa.DateTime(), nullable=False)

    with op.batch_alter_table('pacs_endpoints', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sa.String(length=500),
                              type_=sa.Text(), existing_nullable=False)


def downgrade():
    with op.batch_alter_table('pacs_endpoints', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sa.Text(),
                              type_=sa.String(length=500), existing_nullable=False)

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
