"""The access log: who saw or did what to which patient's data, when, from where."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.types import UTCDateTime, utcnow


class AccessLog(db.Model):
    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_action_email_at", "action", "email", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    role: Mapped[str] = mapped_column(String(100), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # ok | denied | failure
    referral_id: Mapped[int | None] = mapped_column(index=True)
    detail: Mapped[str] = mapped_column(String(500), default="")
    # The row's place in the log's hash chain, set when its transaction commits
    # (workflow/access_log.py): seq counts 1, 2, 3... with no gaps; hash is
    # SHA-256(prev_hash + the row's canonical content).
    seq: Mapped[int | None] = mapped_column(unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class RootEmail(db.Model):
    """The day's signed tree head, emailed to the audit leads once a day.

    The row is the claim (workflow/audit/root_email.py): the scheduler that inserts the
    day's row sends, a second one finds it there and sends nothing. ``day`` is the UTC
    date of the claim."""

    __tablename__ = "root_emails"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    root: Mapped[str] = mapped_column(String(64))
    tree_at: Mapped[str] = mapped_column(String(32))  # the tree head's own "at"
    claimed_by: Mapped[str] = mapped_column(String(100), default="")
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[str] = mapped_column(String(500), default="")


class IntegrityRun(db.Model):
    """One run of the integrity check (workflow/audit/nightly.py): what it checked and
    against which anchor, so the next night checks only what changed since."""

    __tablename__ = "integrity_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    full: Mapped[bool] = mapped_column(default=False)  # the whole walk, or since an anchor
    # The latest anchor the run checked the database against (its tree head's root and
    # "at"); empty without an anchors file.
    anchor_root: Mapped[str] = mapped_column(String(64), default="")
    anchor_at: Mapped[str] = mapped_column(String(32), default="")
    # PostgreSQL only: the transaction id the run started at. A row version written
    # after it (its xmin is younger) was changed since this run looked.
    xid: Mapped[int | None] = mapped_column(BigInteger)
    referrals_checked: Mapped[int] = mapped_column(default=0)
    events_checked: Mapped[int] = mapped_column(default=0)
    problems: Mapped[int] = mapped_column(default=0)
    first_problem: Mapped[str] = mapped_column(String(500), default="")
