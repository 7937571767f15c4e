"""Browsers that take Web Push pages, and who has a referral page open now."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.people import User
from models.types import UTCDateTime, utcnow


class PushBrowser(db.Model):
    """One browser of one user that takes pages by Web Push (RFC 8030): where to post
    (``endpoint``, the push service's URL) and the keys to encrypt for (RFC 8291).
    Deleted when the push service says the subscription is gone (404/410)."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(120))  # the browser's P-256 key, base64url
    auth: Mapped[str] = mapped_column(String(40))  # its 16-byte auth secret, base64url
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship()


class ReferralViewer(db.Model):
    """Someone has this referral's live page open: its stream notes them every few
    seconds; the page lists those seen in the last 30 s as "also viewing now"."""

    __tablename__ = "referral_viewers"

    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

    user: Mapped[User] = relationship()
