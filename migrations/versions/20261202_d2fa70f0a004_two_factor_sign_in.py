"""two-factor sign-in: encrypted TOTP secrets, when 2FA was turned on, the last code used,
one-time recovery codes

Revision ID: d2fa70f0a004
Revises: b0d1e5cafe02
Create Date: 2026-12-02 14:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd2fa70f0a004'
down_revision = 'b0d1e5cafe02'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('recovery_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_recovery_codes_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_codes'))
    )
    with op.batch_alter_table('recovery_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_codes_user_id'), ['user_id'], unique=False)

    # No secret was ever set before this revision (nothing wrote the column), so widening
    # it for the encrypted form needs no data moved.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_enabled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
        batch_op.alter_column('totp_secret',
               existing_type=sa.String(length=64),
               type_=sa.String(length=200),
               existing_nullable=False)


def downgrade():
    # Without totp_enabled_at no secret is in use, and an encrypted one would not fit.
    op.execute("UPDATE users SET totp_secret = ''")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('totp_secret',
               existing_type=sa.String(length=200),
               type_=sa.String(length=64),
               existing_nullable=False)
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_enabled_at')

    with op.batch_alter_table('recovery_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_codes_user_id'))

    op.drop_table('recovery_codes')
