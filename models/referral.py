"""Referrals, their hash-chained events, decisions and linked studies."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.network import Hospital, HubService, Specialty
from models.people import User
from models.types import UTCDateTime, utcnow


class Referral(db.Model):
    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_state_hub", "state", "hub_service_id"),
        Index("ix_referrals_hospital_created", "referring_hospital_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str | None] = mapped_column(String(32), unique=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int] = mapped_column(default=1)
    specialty_id: Mapped[int] = mapped_column(ForeignKey("specialties.id"))
    hub_service_id: Mapped[int] = mapped_column(ForeignKey("hub_services.id"))
    referring_hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"))
    referrer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assigned_specialist_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    urgency: Mapped[str] = mapped_column(String(16), default="emergency")

    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    family_name: Mapped[str] = mapped_column(String(100))
    given_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(16))
    local_number: Mapped[str] = mapped_column(String(32), default="")

    onset_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    onset_certainty: Mapped[str] = mapped_column(String(16))
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    question: Mapped[str] = mapped_column(Text)
    clinical: Mapped[dict] = mapped_column(JSON, default=dict)

    # Milestones, copied from the events for fast audit queries.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    departed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    arrived_at_hub: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))
    # Audit milestones, written by the workflow when they happen: the first escalation
    # page claimed (the page_sent transition), the first image viewed (access log),
    # when escalation ran out (escalation_exhausted), and whether a step >= 1 was paged.
    first_paged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_image_viewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unanswered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated: Mapped[bool] = mapped_column(default=False, server_default=false())
    # When a study of the patient taken after the referral was first found in the
    # referring hospital's PACS (workflow/imaging/arrivals.py), and its last look there.
    images_arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    images_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    specialty: Mapped[Specialty] = relationship()
    hub_service: Mapped[HubService] = relationship()
    referring_hospital: Mapped[Hospital] = relationship()
    referrer: Mapped[User] = relationship(foreign_keys=[referrer_id])
    assigned_specialist: Mapped[User | None] = relationship(foreign_keys=[assigned_specialist_id])
    events: Mapped[list[ReferralEvent]] = relationship(
        back_populates="referral", order_by="ReferralEvent.seq"
    )
    decision: Mapped[Decision | None] = relationship(back_populates="referral", uselist=False)
    studies: Mapped[list[LinkedStudy]] = relationship(
        back_populates="referral", order_by="LinkedStudy.id"
    )


class ReferralEvent(db.Model):
    """One step in a referral's life. Append-only; each row hashes the one before."""

    __tablename__ = "referral_events"
    __table_args__ = (UniqueConstraint("referral_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    seq: Mapped[int]
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(200), default="")
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    referral: Mapped[Referral] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship()


class Decision(db.Model):
    """The signed decision. Written once; corrections are addendum events."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), unique=True)
    outcome: Mapped[str] = mapped_column(String(16))
    destination_hospital_id: Mapped[int | None] = mapped_column(ForeignKey("hospitals.id"))
    destination_unit: Mapped[str] = mapped_column(String(200), default="")
    transfer_urgency: Mapped[str] = mapped_column(String(32), default="")
    advice: Mapped[str] = mapped_column(Text, default="")
    rationale: Mapped[str] = mapped_column(Text)
    decided_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    signed_with: Mapped[str] = mapped_column(String(16), default="")

    referral: Mapped[Referral] = relationship(back_populates="decision")
    destination_hospital: Mapped[Hospital | None] = relationship()
    decided_by: Mapped[User] = relationship()


class LinkedStudy(db.Model):
    """An imaging study in a hospital's PACS, linked to a referral (UIDs + a snapshot)."""

    __tablename__ = "linked_studies"
    __table_args__ = (UniqueConstraint("referral_id", "study_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id"))
    study_uid: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200), default="")
    study_date: Mapped[str] = mapped_column(String(16), default="")
    modalities: Mapped[str] = mapped_column(String(64), default="")
    series_count: Mapped[int] = mapped_column(default=0)
    instance_count: Mapped[int] = mapped_column(default=0)
    # How many images the PACS held when arrivals.poll last looked (None: not since the
    # link): more than instance_count means the study was still arriving when linked.
    pacs_instance_count: Mapped[int | None] = mapped_column(nullable=True)
    pacs_counted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    snapshot: Mapped[dict] = mapped_column(JSON, default=dict)
    # When the study was taken (StudyDate + StudyTime, read as UK wall-clock time), as
    # UTC; None when the date is missing or not a date. Kept from study_date and the
    # snapshot on every ORM write (workflow.audit.dido.install), so the audit reads it
    # without parsing DICOM text per row.
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    linked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    referral: Mapped[Referral] = relationship(back_populates="studies")
    hospital: Mapped[Hospital] = relationship()


class MessageReceipt(db.Model):
    """How far one message of the thread got with one person involved in the referral:
    delivered (a page of theirs showed it) and read (it was on their screen). "Sent" is
    the message event itself. Not a state change: no event, no version."""

    __tablename__ = "message_receipts"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        Index("ix_message_receipts_user_unread", "user_id", "read_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("referral_events.id"))
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()
