"""The access log is hash-chained: seq, prev_hash and hash on every row

Rows already in the log are sealed here, in id order, as the chain's first segment
(seq 1..n from the genesis hash), with the same canonical form the app seals with
(workflow/access_log.py), so `flask audit verify` walks one chain from the start.
The anchors themselves live outside the database (GOLDENHOUR_ANCHOR_LOG).

Revision ID: e2a7c4b9d1f3
Revises: f3b8d5c0e2a4
Create Date: 2026-12-03 12:00:00.000000

"""
import hashlib
import json
from datetime import UTC

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e2a7c4b9d1f3'
down_revision = 'f3b8d5c0e2a4'
branch_labels = None
depends_on = None

GENESIS = "0" * 64
SEALED = ("id", "at", "user_id", "email", "role", "address", "action", "outcome",
          "referral_id", "detail")


def _canonical(row, seq) -> str:
    # A frozen copy of workflow/access_log.canonical at this revision.
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    content = {name: getattr(row, name) for name in SEALED}
    content["at"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    content["seq"] = seq
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def upgrade():
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_access_log_seq', ['seq'])

    types = {'at': sa.DateTime()}
    log = sa.table('access_log', *(sa.column(name, types.get(name)) for name in SEALED),
                   sa.column('seq', sa.Integer()), sa.column('prev_hash', sa.String()),
                   sa.column('hash', sa.String()))
    connection = op.get_bind()
    prev = GENESIS
    rows = connection.execute(sa.select(*(log.c[name] for name in SEALED))
                              .order_by(log.c.id))
    for seq, row in enumerate(rows.all(), start=1):
        digest = hashlib.sha256((prev + _canonical(row, seq)).encode()).hexdigest()
        connection.execute(log.update().where(log.c.id == row.id).values(
            seq=seq, prev_hash=prev, hash=digest))
        prev = digest


def downgrade():
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_constraint('uq_access_log_seq', type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
