"""Images flagged by a clinician while reviewing a referral's studies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.network import Hospital
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


class KeyObjectDocument(db.Model):
    """A DICOM Key Object Selection document naming a study's key images, written back
    to the hospital's PACS by STOW-RS from the scheduler (workflow/imaging/key_objects.py).

    Its SOP Instance UID is chosen when the decision is recorded (the record names it);
    ``status`` is pending until the PACS has stored it (stored), or gave up (failed).
    """

    __tablename__ = "key_object_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"))
    study_uid: Mapped[str] = mapped_column(String(64))
    series_uid: Mapped[str] = mapped_column(String(64))
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)
    references: Mapped[list] = mapped_column(JSON, default=list)  # [{series_uid, sop_uid, frame}]
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_try_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OfferedStudy(db.Model):
    """A study of the referral's patient that arrived in a hospital's PACS after the
    referral, offered on the referral page to link with one tap."""

    __tablename__ = "offered_studies"
    __table_args__ = (UniqueConstraint("referral_id", "study_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"))
    study_uid: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200), default="")
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    found_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    warning: Mapped[str] = mapped_column(String(500), default="")  # the identity check's
    status: Mapped[str] = mapped_column(String(16), default="offered")  # offered | linked

    hospital: Mapped[Hospital] = relationship()
