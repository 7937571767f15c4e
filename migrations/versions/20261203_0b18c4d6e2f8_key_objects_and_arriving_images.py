"""key object documents, studies offered as they arrive, the images-arrived milestone

Revision ID: 0b18c4d6e2f8
Revises: b1c4d6e8f014
Create Date: 2026-12-03 21:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0b18c4d6e2f8'
down_revision = 'b1c4d6e8f014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('key_object_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=False),
    sa.Column('hospital_id', sa.Integer(), nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('series_uid', sa.String(length=64), nullable=False),
    sa.Column('sop_uid', sa.String(length=64), nullable=False),
    sa.Column('references', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_try_at', sa.DateTime(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('stored_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['hospital_id'], ['hospitals.id'],
                            name=op.f('fk_key_object_documents_hospital_id_hospitals')),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'],
                            name=op.f('fk_key_object_documents_referral_id_referrals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_key_object_documents')),
    sa.UniqueConstraint('sop_uid', name=op.f('uq_key_object_documents_sop_uid'))
    )
    with op.batch_alter_table('key_object_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_key_object_documents_referral_id'),
                              ['referral_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_key_object_documents_status'), ['status'],
                              unique=False)
    op.create_table('offered_studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=False),
    sa.Column('hospital_id', sa.Integer(), nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('taken_at', sa.DateTime(), nullable=True),
    sa.Column('found_at', sa.DateTime(), nullable=False),
    sa.Column('warning', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['hospital_id'], ['hospitals.id'],
                            name=op.f('fk_offered_studies_hospital_id_hospitals')),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'],
                            name=op.f('fk_offered_studies_referral_id_referrals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offered_studies')),
    sa.UniqueConstraint('referral_id', 'study_uid',
                        name=op.f('uq_offered_studies_referral_id_study_uid'))
    )
    with op.batch_alter_table('offered_studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_offered_studies_referral_id'), ['referral_id'],
                              unique=False)
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('images_arrived_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('images_checked_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_column('images_checked_at')
        batch_op.drop_column('images_arrived_at')
    op.drop_table('offered_studies')
    op.drop_table('key_object_documents')
