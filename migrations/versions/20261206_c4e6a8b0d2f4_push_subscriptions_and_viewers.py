"""push_subscriptions (browsers that take Web Push pages) and referral_viewers (who
has a referral's live page open)

Two new tables that the previous release neither reads nor writes.

Revision ID: c4e6a8b0d2f4
Revises: c9e3f5a7b1d2
Create Date: 2026-12-06 08:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4e6a8b0d2f4'
down_revision = 'c9e3f5a7b1d2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('push_subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('endpoint', sa.String(length=1000), nullable=False),
        sa.Column('p256dh', sa.String(length=120), nullable=False),
        sa.Column('auth', sa.String(length=40), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_push_subscriptions_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_push_subscriptions')),
        sa.UniqueConstraint('endpoint', name=op.f('uq_push_subscriptions_endpoint'))
    )
    op.create_index(op.f('ix_push_subscriptions_user_id'), 'push_subscriptions', ['user_id'], unique=False)
    op.create_table('referral_viewers',
        sa.Column('referral_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('seen_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], name=op.f('fk_referral_viewers_referral_id_referrals')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_referral_viewers_user_id_users')),
        sa.PrimaryKeyConstraint('referral_id', 'user_id', name=op.f('pk_referral_viewers'))
    )
    op.create_index(op.f('ix_referral_viewers_seen_at'), 'referral_viewers', ['seen_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_referral_viewers_seen_at'), table_name='referral_viewers')
    op.drop_table('referral_viewers')
    op.drop_index(op.f('ix_push_subscriptions_user_id'), table_name='push_subscriptions')
    op.drop_table('push_subscriptions')
