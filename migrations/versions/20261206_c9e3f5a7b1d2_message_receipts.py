"""message receipts: delivered and read, per message of the thread and per person

One row per message event and person involved in the referral (referrer, assigned and
paged specialists, the hub's duty managers), written with the message; the page fills
delivered_at and read_at. Not evidence: updated in place, no trigger.

Revision ID: c9e3f5a7b1d2
Revises: b8f2d4e6a0c1
Create Date: 2026-12-06 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c9e3f5a7b1d2'
down_revision = 'b8f2d4e6a0c1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'message_receipts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('referral_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        sa.Column('read_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['referral_events.id'], ),
        sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], ),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', 'user_id'),
    )
    with op.batch_alter_table('message_receipts', schema=None) as batch_op:
        batch_op.create_index('ix_message_receipts_user_unread', ['user_id', 'read_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_message_receipts_referral_id'), ['referral_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('message_receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_receipts_referral_id'))
        batch_op.drop_index('ix_message_receipts_user_unread')
    op.drop_table('message_receipts')
