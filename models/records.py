"""Decision records: the signed PDF of a decision (and of each addendum), stored once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.types import UTCDateTime, utcnow


class DecisionRecord(db.Model):
    """Version n of a referral's decision record.

    ``content`` is the canonical snapshot taken in the decision's own transaction and
    ``content_sha256`` its hash (printed in the PDF). The PDF is rendered later, outside
    the request, and its bytes and their hash are stored once and served as they are.
    """

    __tablename__ = "decision_records"
    __table_args__ = (
        UniqueConstraint("referral_id", "version"),
        # The few records the next anchor has to note.
        Index("ix_decision_records_unanchored", "id",
              postgresql_where=text("anchored_root IS NULL"),
              sqlite_where=text("anchored_root IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    version: Mapped[int]
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("decision_records.id"))
    event_seq: Mapped[int]
    content: Mapped[dict] = mapped_column(JSON)
    content_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|ready|failed
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    pdf_sha256: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rendered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The first anchor (workflow/audit/anchors.py) whose signed tree covered the event
    # this version was made at: its root and time, noted once by the anchoring job.
    anchored_root: Mapped[str | None] = mapped_column(String(64))
    anchored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
