"""Paging: escalation policies, the per-referral escalation, due pages and deliveries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.network import HubService
from models.people import User
from models.types import UTCDateTime, utcnow


class EscalationPolicy(db.Model):
    """A hub service's escalation steps, editable by admins.

    ``steps`` is a list of {"who": "tier1" | "tier2" | "tier3" | "duty_manager" |
    "user:<id>", "channels": ["sms", "voice", "email", "webpush", "in_app"], "wait_minutes": int,
    "repeat": int}.
    """

    __tablename__ = "escalation_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    hub_service_id: Mapped[int] = mapped_column(ForeignKey("hub_services.id"), unique=True)
    steps: Mapped[list] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    hub_service: Mapped[HubService] = relationship()


class Escalation(db.Model):
    """The policy as it was when paging started for one referral (later edits don't apply)."""

    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), unique=True)
    steps: Mapped[list] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_reason: Mapped[str] = mapped_column(String(64), default="")


class Page(db.Model):
    """One due step of paging for a referral: who to page, how, and when.

    The unique (referral, step, attempt) key makes a double page impossible: a second
    sweep cannot create or claim the same step twice. ``kind`` says what the page is;
    out-of-band kinds have a fixed negative step (see workflow.paging.pages).
    """

    __tablename__ = "pages"
    __table_args__ = (
        UniqueConstraint("referral_id", "step", "attempt"),
        Index("ix_pages_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # workflow.paging.pages.PageKind
    step: Mapped[int]
    attempt: Mapped[int] = mapped_column(default=0)
    who: Mapped[str] = mapped_column(String(64))
    channels: Mapped[list] = mapped_column(JSON)
    wait_minutes: Mapped[int] = mapped_column(default=0)
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="due")  # due|claimed|cancelled
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    deliveries: Mapped[list[Delivery]] = relationship(back_populates="page",
                                                      order_by="Delivery.id")


class Delivery(db.Model):
    """One message to one person on one channel, and what the provider said of it."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("page_id", "recipient_id", "channel"),
        Index("ix_deliveries_status_claimed", "status", "claimed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"), index=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # sms|voice|email|webpush|in_app|console
    text: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(String(500), default="")
    # sending -> queued/sent/delivered/ringing/in-progress/completed | failed/undelivered/...
    status: Mapped[str] = mapped_column(String(24), default="sending")
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    answered_by: Mapped[str] = mapped_column(String(32), default="")
    error: Mapped[str] = mapped_column(String(500), default="")
    permanent_failure: Mapped[bool] = mapped_column(default=False)
    send_attempts: Mapped[int] = mapped_column(default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    link_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A failed delivery the provider never took (down, 5xx, 429) is sent again at this
    # time (workflow/paging/delivery.py); None: no resend is planned.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)

    page: Mapped[Page] = relationship(back_populates="deliveries")
    recipient: Mapped[User | None] = relationship()


class WebhookReceipt(db.Model):
    """A Twilio webhook already acted on (by MessageSid/CallSid + what it was)."""

    __tablename__ = "webhook_receipts"
    __table_args__ = (UniqueConstraint("sid", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SchedulerHeartbeat(db.Model):
    """The scheduler writes here on every sweep; the app reports a stale heartbeat."""

    __tablename__ = "scheduler_heartbeats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[str] = mapped_column(String(200), default="")


class SchedulerLeader(db.Model):
    """Which `flask scheduler run` process leads (sends pages), written by the leader.

    ``epoch`` grows by one at every takeover: a claim checks it, so a process that lost
    leadership cannot send (workflow/paging/leadership.py). ``expires_at`` is the lease
    on SQLite, where no advisory lock exists; PostgreSQL holds an advisory lock instead.
    """

    __tablename__ = "scheduler_leaders"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(default=0)
    epoch: Mapped[int] = mapped_column(default=0)
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
