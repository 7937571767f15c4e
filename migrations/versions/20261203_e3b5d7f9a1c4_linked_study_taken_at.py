"""linked_studies.taken_at: when each linked study was taken, as UTC

The audit's door-in-door-out chart reads the CT time of a year of transfers in one
query instead of parsing StudyDate/StudyTime in Python per study. The app keeps it on
every write (workflow.audit.dido.install); existing rows are filled here, in Python,
because the UK wall-clock reading needs the time zone rules (SQLite has none). The
previous release neither reads nor writes the column.

Revision ID: e3b5d7f9a1c4
Revises: d2a4c6e8f0b3
Create Date: 2026-12-03 13:20:00

"""
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e3b5d7f9a1c4'
down_revision = 'd2a4c6e8f0b3'
branch_labels = None
depends_on = None

LONDON = ZoneInfo("Europe/London")
BATCH = 2000


def taken_at(study_date, study_time):
    """As workflow.audit.dido.study_time on the day of this migration (kept here so the
    migration does not change when the app does), naive UTC for the column."""
    digits = "".join(c for c in (study_time or "").split(".")[0] if c.isdigit())
    try:
        day = datetime.strptime((study_date or "")[:8], "%Y%m%d")
        hour, minute, second = int(digits[0:2] or 0), int(digits[2:4] or 0), \
            int(digits[4:6] or 0)
        return day.replace(hour=hour, minute=minute, second=second,
                           tzinfo=LONDON).astimezone(UTC).replace(tzinfo=None)
    except ValueError:
        return None


def upgrade():
    with op.batch_alter_table('linked_studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('taken_at', sa.DateTime(), nullable=True))

    studies = sa.table('linked_studies', sa.column('id', sa.Integer),
                       sa.column('study_date', sa.String),
                       sa.column('snapshot', sa.JSON), sa.column('taken_at', sa.DateTime))
    conn = op.get_bind()
    after = 0
    while True:
        rows = conn.execute(
            sa.select(studies.c.id, studies.c.study_date,
                      studies.c.snapshot['study_time'].as_string())
            .where(studies.c.id > after).order_by(studies.c.id).limit(BATCH)).all()
        if not rows:
            break
        found = [{"row_id": i, "taken": taken_at(d, t)} for i, d, t in rows]
        found = [f for f in found if f["taken"] is not None]
        if found:
            conn.execute(studies.update().where(studies.c.id == sa.bindparam("row_id"))
                         .values(taken_at=sa.bindparam("taken")), found)
        after = rows[-1][0]


def downgrade():
    with op.batch_alter_table('linked_studies', schema=None) as batch_op:
        batch_op.drop_column('taken_at')
