"""Images flagged by a clinician while reviewing a referral's studies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.people import User
from models.types import UTCDateTime, utcnow


class KeyImage(db.Model):
    """One frame a clinician flagged as key, shown in the decision record.

    The identity (UIDs, frame, preset) is what the record's hash covers; the pixels
    are rendered again from the PACS when the PDF is made.
    """

    __tablename__ = "key_images"
    __table_args__ = (UniqueConstraint("referral_id", "sop_uid", "frame"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    series_uid: Mapped[str] = mapped_column(String(64))
    sop_uid: Mapped[str] = mapped_column(String(64))
    frame: Mapped[int] = mapped_column(default=1)
    preset: Mapped[str] = mapped_column(String(32), default="brain")
    label: Mapped[str] = mapped_column(String(200), default="")
    flagged_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    flagged_by: Mapped[User] = relationship()
