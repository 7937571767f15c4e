"""The access log: who saw or did what to which patient's data, when, from where."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
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
